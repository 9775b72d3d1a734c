/*
 * dcnr_blas: a minimal N-API addon exposing OpenBLAS sgemm to Node.
 *
 * Exports:
 *   sgemm(transA, transB, m, n, k, alpha, a, b, beta, c)  -> undefined
 *       C = alpha * op(A) * op(B) + beta * C, row-major, computed in place on
 *       the Float32Arrays' own memory (no copies). m, n, k are the shapes AFTER
 *       transposition: op(A) is m x k, op(B) is k x n, C is m x n; so with
 *       transA, `a` is stored k x m, with transB, `b` is stored n x k.
 *   adam(p, m0, v0, g, out, m, v, lr, beta1, beta2, eps, c1, c2) -> undefined
 *       one Adam step into out/m/v (new arrays the caller made), in the same float
 *       arithmetic, in the same order, as runtime/kernels/typed-array-ops.ts
 *       `adamStep` — bit-identical to it (no FMA contraction: -ffp-contract=off;
 *       -fno-math-errno only lets sqrtf vectorize).
 *   adamPredict(p, m, v, out, step, eps) -> undefined
 *       out = p − step·m/(√v+ε), as typed-array-ops.ts `adamPredict`.
 *   setThreads(n) -> undefined, getThreads() -> number, config() -> string,
 *   coreName() -> string (the CPU kernel set OpenBLAS picked, e.g. "Haswell":
 *       results are bit-identical only for the same core name AND thread count)
 *
 * Every argument is checked before OpenBLAS sees it: a bad call throws a JS
 * Error and never touches memory it does not own (a crash would take the whole
 * PNode and all its VNodes down with it).
 *
 * Uses plain node_api.h (ABI-stable), so one build works across Node versions.
 */
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/*
 * Declared here too because a non-OpenBLAS cblas.h (e.g. netlib's) lacks them.
 * These prototypes match OpenBLAS's own header, so redeclaring is harmless.
 */
extern void openblas_set_num_threads(int num_threads);
extern int openblas_get_num_threads(void);
extern char *openblas_get_config(void);
extern char *openblas_get_corename(void);

/* OpenBLAS's blasint is 32-bit in the Debian build; keep every dim/ld below it. */
#define MAX_DIM ((double)INT32_MAX)
/* Upper bound for setThreads: far above any real machine, and keeps int safe. */
#define MAX_THREADS 4096

static napi_value throw_error(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

/* True if a JS exception is already pending (then we must just return). */
static int pending(napi_env env) {
  bool p = false;
  napi_is_exception_pending(env, &p);
  return p;
}

#define NAPI_OK(call, what)                                       \
  do {                                                            \
    if ((call) != napi_ok) {                                      \
      if (!pending(env)) throw_error(env, "dcnr_blas: " what);    \
      return NULL;                                                \
    }                                                             \
  } while (0)

static int get_bool(napi_env env, napi_value v, const char *name, bool *out) {
  char msg[160];
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_boolean) {
    snprintf(msg, sizeof msg, "sgemm: %s must be a boolean", name);
    throw_error(env, msg);
    return 0;
  }
  napi_get_value_bool(env, v, out);
  return 1;
}

static int get_finite(napi_env env, napi_value v, const char *fn, const char *name, double *out) {
  char msg[160];
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) {
    snprintf(msg, sizeof msg, "%s: %s must be a number", fn, name);
    throw_error(env, msg);
    return 0;
  }
  napi_get_value_double(env, v, out);
  if (!isfinite(*out)) {
    snprintf(msg, sizeof msg, "%s: %s must be finite, got %g", fn, name, *out);
    throw_error(env, msg);
    return 0;
  }
  return 1;
}

/* A positive integer no larger than `max`. */
static int get_pos_int(napi_env env, napi_value v, const char *fn, const char *name, double max, int *out) {
  char msg[160];
  double d;
  if (!get_finite(env, v, fn, name, &d)) return 0;
  if (d != floor(d) || d < 1 || d > max) {
    snprintf(msg, sizeof msg, "%s: %s must be an integer in 1..%.0f, got %g", fn, name, max, d);
    throw_error(env, msg);
    return 0;
  }
  *out = (int)d;
  return 1;
}

static int get_f32(napi_env env, napi_value v, const char *fn, const char *name, float **data, size_t *len) {
  char msg[160];
  bool is_ta = false;
  napi_typedarray_type type;
  void *ptr = NULL;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) {
    snprintf(msg, sizeof msg, "%s: %s must be a Float32Array", fn, name);
    throw_error(env, msg);
    return 0;
  }
  /* `ptr` already includes the view's byteOffset. */
  if (napi_get_typedarray_info(env, v, &type, len, &ptr, NULL, NULL) != napi_ok) {
    snprintf(msg, sizeof msg, "%s: could not read typed array %s", fn, name);
    throw_error(env, msg);
    return 0;
  }
  if (type != napi_float32_array) {
    snprintf(msg, sizeof msg, "%s: %s must be a Float32Array", fn, name);
    throw_error(env, msg);
    return 0;
  }
  /* A detached buffer reports length 0; the length check below rejects it. */
  *data = (float *)ptr;
  return 1;
}

static int check_len(napi_env env, const char *name, size_t have, int rows, int cols) {
  char msg[200];
  uint64_t need = (uint64_t)rows * (uint64_t)cols; /* no overflow: both < 2^31 */
  if ((uint64_t)have < need) {
    snprintf(msg, sizeof msg, "sgemm: %s has %zu elements, needs %llu for %dx%d", name, have,
             (unsigned long long)need, rows, cols);
    throw_error(env, msg);
    return 0;
  }
  return 1;
}

/* Do the byte ranges [p, p+pn) and [q, q+qn) (in floats) overlap? */
static int overlaps(const float *p, size_t pn, const float *q, size_t qn) {
  uintptr_t p0 = (uintptr_t)p, p1 = p0 + pn * sizeof(float);
  uintptr_t q0 = (uintptr_t)q, q1 = q0 + qn * sizeof(float);
  return pn > 0 && qn > 0 && p0 < q1 && q0 < p1;
}

static napi_value js_sgemm(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  bool ta, tb;
  int m, n, k;
  double alpha, beta;
  float *a, *b, *c;
  size_t alen, blen, clen;

  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL), "could not read arguments");
  if (argc != 10) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "sgemm: expected 10 arguments (transA, transB, m, n, k, alpha, a, b, beta, c), got %zu", argc);
    return throw_error(env, msg);
  }
  if (!get_bool(env, argv[0], "transA", &ta)) return NULL;
  if (!get_bool(env, argv[1], "transB", &tb)) return NULL;
  if (!get_pos_int(env, argv[2], "sgemm", "m", MAX_DIM, &m)) return NULL;
  if (!get_pos_int(env, argv[3], "sgemm", "n", MAX_DIM, &n)) return NULL;
  if (!get_pos_int(env, argv[4], "sgemm", "k", MAX_DIM, &k)) return NULL;
  if (!get_finite(env, argv[5], "sgemm", "alpha", &alpha)) return NULL;
  if (!get_f32(env, argv[6], "sgemm", "a", &a, &alen)) return NULL;
  if (!get_f32(env, argv[7], "sgemm", "b", &b, &blen)) return NULL;
  if (!get_finite(env, argv[8], "sgemm", "beta", &beta)) return NULL;
  if (!get_f32(env, argv[9], "sgemm", "c", &c, &clen)) return NULL;

  /* Stored shapes: a is m x k (k x m with transA), b is k x n (n x k with transB). */
  if (!check_len(env, "a", alen, ta ? k : m, ta ? m : k)) return NULL;
  if (!check_len(env, "b", blen, tb ? n : k, tb ? k : n)) return NULL;
  if (!check_len(env, "c", clen, m, n)) return NULL;

  /* sgemm reads a and b while writing c: overlapping memory gives garbage. */
  {
    size_t an = (size_t)m * (size_t)k, bn = (size_t)k * (size_t)n, cn = (size_t)m * (size_t)n;
    if (overlaps(c, cn, a, an)) return throw_error(env, "sgemm: c must not share memory with a");
    if (overlaps(c, cn, b, bn)) return throw_error(env, "sgemm: c must not share memory with b");
  }

  /* Row-major leading dimensions are the stored row lengths. */
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k,
              (float)alpha, a, ta ? m : k, b, tb ? k : n, (float)beta, c, n);
  return NULL; /* undefined */
}

/* `n` Float32Arrays of one length, none sharing memory with an output (the first `outputs`). */
static int get_vectors(napi_env env, napi_value *argv, const char *fn, const char **names, int n, int outputs, float **arrays, size_t *len) {
  char msg[200];
  for (int i = 0; i < n; i++) {
    size_t l;
    if (!get_f32(env, argv[i], fn, names[i], &arrays[i], &l)) return 0;
    if (i == 0) *len = l;
    if (l != *len) {
      snprintf(msg, sizeof msg, "%s: %s has %zu elements, %s has %zu", fn, names[i], l, names[0], *len);
      throw_error(env, msg);
      return 0;
    }
  }
  for (int o = n - outputs; o < n; o++)
    for (int i = 0; i < n; i++)
      if (i != o && overlaps(arrays[o], *len, arrays[i], *len)) {
        snprintf(msg, sizeof msg, "%s: %s must not share memory with %s", fn, names[o], names[i]);
        throw_error(env, msg);
        return 0;
      }
  return 1;
}

/* One Adam step over n weights (see `adam` above); a loop of its own so it vectorizes. */
static void adam_loop(size_t n, const float *restrict p, const float *restrict m0, const float *restrict v0, const float *restrict g,
                      float *restrict out, float *restrict m, float *restrict v, const double *h) {
  /* The constants as typed-array-ops.ts `adamConstants` makes them: double, then float. */
  const float b1 = (float)h[1], ob1 = (float)(1 - h[1]), b2 = (float)h[2], ob2 = (float)(1 - h[2]);
  const float step_size = (float)(h[0] / h[4]), inv_sqrt_c2 = (float)(1 / sqrt(h[5])), eps = (float)h[3];
  /* Float arithmetic, one rounding per operation, the JS reference's order (no contraction). */
  for (size_t i = 0; i < n; i++) {
    const float gi = g[i];
    const float mi = b1 * m0[i] + ob1 * gi;
    const float vi = b2 * v0[i] + (ob2 * gi) * gi;
    m[i] = mi;
    v[i] = vi;
    out[i] = p[i] - (step_size * mi) / (sqrtf(vi) * inv_sqrt_c2 + eps);
  }
}

static napi_value js_adam(napi_env env, napi_callback_info info) {
  size_t argc = 13;
  napi_value argv[13];
  static const char *names[] = {"p", "m0", "v0", "g", "out", "m", "v"};
  float *a[7];
  size_t len;
  double h[6];
  static const char *hn[] = {"lr", "beta1", "beta2", "eps", "c1", "c2"};
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL), "could not read arguments");
  if (argc != 13) return throw_error(env, "adam: expected 13 arguments (p, m0, v0, g, out, m, v, lr, beta1, beta2, eps, c1, c2)");
  if (!get_vectors(env, argv, "adam", names, 7, 3, a, &len)) return NULL;
  for (int i = 0; i < 6; i++)
    if (!get_finite(env, argv[7 + i], "adam", hn[i], &h[i])) return NULL;
  adam_loop(len, a[0], a[1], a[2], a[3], a[4], a[5], a[6], h);
  return NULL;
}

static napi_value js_adam_predict(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  static const char *names[] = {"p", "m", "v", "out"};
  float *a[4];
  size_t len;
  double step, eps;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL), "could not read arguments");
  if (argc != 6) return throw_error(env, "adamPredict: expected 6 arguments (p, m, v, out, step, eps)");
  if (!get_vectors(env, argv, "adamPredict", names, 4, 1, a, &len)) return NULL;
  if (!get_finite(env, argv[4], "adamPredict", "step", &step)) return NULL;
  if (!get_finite(env, argv[5], "adamPredict", "eps", &eps)) return NULL;
  {
    const float s = (float)step, e = (float)eps;
    const float *p = a[0], *m = a[1], *v = a[2];
    float *restrict out = a[3];
    for (size_t i = 0; i < len; i++) out[i] = p[i] - (s * m[i]) / (sqrtf(v[i]) + e);
  }
  return NULL;
}

static napi_value js_set_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int t;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL), "could not read arguments");
  if (argc != 1) return throw_error(env, "setThreads: expected 1 argument (thread count)");
  if (!get_pos_int(env, argv[0], "setThreads", "n", MAX_THREADS, &t)) return NULL;
  openblas_set_num_threads(t);
  return NULL;
}

static napi_value js_get_threads(napi_env env, napi_callback_info info) {
  napi_value out;
  (void)info;
  NAPI_OK(napi_create_int32(env, openblas_get_num_threads(), &out), "could not create number");
  return out;
}

/* A C string (or `fallback` when NULL) as a JS string. */
static napi_value js_string(napi_env env, const char *s, const char *fallback) {
  napi_value out;
  NAPI_OK(napi_create_string_utf8(env, s ? s : fallback, NAPI_AUTO_LENGTH, &out), "could not create string");
  return out;
}

static napi_value js_config(napi_env env, napi_callback_info info) {
  (void)info;
  return js_string(env, openblas_get_config(), "");
}

static napi_value js_core_name(napi_env env, napi_callback_info info) {
  (void)info;
  return js_string(env, openblas_get_corename(), "unknown");
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"sgemm", NULL, js_sgemm, NULL, NULL, NULL, napi_enumerable, NULL},
      {"adam", NULL, js_adam, NULL, NULL, NULL, napi_enumerable, NULL},
      {"adamPredict", NULL, js_adam_predict, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setThreads", NULL, js_set_threads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getThreads", NULL, js_get_threads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"config", NULL, js_config, NULL, NULL, NULL, napi_enumerable, NULL},
      {"coreName", NULL, js_core_name, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
