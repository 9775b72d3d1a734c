/**
 * The non-matmul kernel ops as plain typed-array loops: the ONE implementation of
 * them for the CPU backends. The reference backend (./reference.ts, mode `js`) and
 * the OpenBLAS backend (./blas.ts) differ only in matmul, so a BLAS PNode and a
 * `js` PNode compute these ops bit for bit alike, by construction.
 *
 * These ops are memory-bound and O(n), so a tight JS loop is as fast as a native
 * call would be once the call overhead is counted. Every loop runs in a fixed
 * order and sums in float64, so results are bit-identical run to run and
 * machine to machine (V8's Math.exp/tanh/log are its own fdlibm port, not libm).
 *
 * Numerics (tests and determinism depend on them):
 * - sumRows: every output element is a float64 sum in ascending row order,
 *   rounded to float32 once at the end.
 * - elementwise ops and losses: computed in float64 from the float32 inputs,
 *   each output element rounded to float32 once.
 * - loss scalars: per-row (softmax CE) or per-element (MSE) terms rounded to
 *   float32, then summed in float64 in index order.
 * - softmaxRows, layerNorm and their backwards: per-row sums, means and dot products
 *   in float64 in ascending column order; column sums (dgamma, dbeta, scatterAdd) in
 *   float64 in ascending row order; one float32 rounding per output element. layerNorm
 *   rounds mean and rstd to float32 first and normalizes with those (what it returns).
 * - gather: exact copies.
 *
 * Each function returns a NEW array and never mutates its inputs. Arguments are
 * checked up front by ./checks.ts, the checks every backend shares.
 */
import {
  checkActivation,
  checkActivationGrad,
  checkAddBias,
  checkGather,
  checkLayerNorm,
  checkLayerNormGrad,
  checkMse,
  checkScatterAdd,
  checkSoftmaxCrossEntropy,
  checkSoftmaxCrossEntropyIds,
  checkSoftmaxRows,
  checkSoftmaxRowsGrad,
  checkSumRows,
} from './checks.js';
import type { ActivationFn, AdamStep, Kernels, LayerNormGrad, LayerNormResult, LossResult, SoftmaxOptions } from './types.js';

/** √(2/π), the constant of the tanh-approximated gelu (as a double; gpu.js sources round it to float32). */
export const GELU_K = Math.sqrt(2 / Math.PI);
/** The cubic coefficient of the tanh-approximated gelu. */
export const GELU_C = 0.044715;

/** y[r,c] = x[r,c] + bias[c] for a rows×cols matrix. */
export function addBias(x: Float32Array, bias: Float32Array, rows: number, cols: number): Float32Array {
  checkAddBias(x, bias, rows, cols);
  const y = new Float32Array(rows * cols);
  for (let r = 0, o = 0; r < rows; r++, o += cols) {
    for (let c = 0; c < cols; c++) y[o + c] = x[o + c] + bias[c];
  }
  return y;
}

/** Column sums of a rows×cols matrix (the bias gradient): out[c] = Σ_r dy[r,c], summed in float64 row by row. */
export function sumRows(dy: Float32Array, rows: number, cols: number): Float32Array {
  checkSumRows(dy, rows, cols);
  // Walk rows in memory order (cache-friendly) and keep float64 partial sums per column.
  const acc = new Float64Array(cols);
  for (let r = 0, o = 0; r < rows; r++, o += cols) {
    for (let c = 0; c < cols; c++) acc[c] += dy[o + c];
  }
  return Float32Array.from(acc);
}

/** Elementwise activation f(x). relu maps −0 and NaN to +0, as every backend does. */
export function activation(fn: ActivationFn, x: Float32Array): Float32Array {
  checkActivation(fn, x);
  const n = x.length;
  const y = new Float32Array(n);
  switch (fn) {
    case 'relu':
      for (let i = 0; i < n; i++) {
        const v = x[i];
        y[i] = v > 0 ? v : 0;
      }
      break;
    case 'tanh':
      for (let i = 0; i < n; i++) y[i] = Math.tanh(x[i]);
      break;
    case 'sigmoid':
      // For v < −709, exp(−v) overflows to Infinity and 1/(1+Inf) = 0: the right limit, no NaN.
      for (let i = 0; i < n; i++) y[i] = 1 / (1 + Math.exp(-x[i]));
      break;
    case 'gelu':
      for (let i = 0; i < n; i++) {
        const v = x[i];
        y[i] = 0.5 * v * (1 + Math.tanh(GELU_K * (v + GELU_C * v * v * v)));
      }
      break;
  }
  return y;
}

/** Elementwise activation gradient dx = dy · f'(x), from the activation INPUT x. relu'(0) is taken as 0. */
export function activationGrad(fn: ActivationFn, x: Float32Array, dy: Float32Array): Float32Array {
  checkActivationGrad(fn, x, dy);
  const n = x.length;
  const dx = new Float32Array(n);
  switch (fn) {
    case 'relu':
      // dy·0, not a literal 0: gives −0 for negative dy; a literal would change the bits of recorded runs
      for (let i = 0; i < n; i++) dx[i] = dy[i] * (x[i] > 0 ? 1 : 0);
      break;
    case 'tanh':
      for (let i = 0; i < n; i++) {
        const t = Math.tanh(x[i]);
        dx[i] = dy[i] * (1 - t * t);
      }
      break;
    case 'sigmoid':
      for (let i = 0; i < n; i++) {
        const s = 1 / (1 + Math.exp(-x[i]));
        dx[i] = dy[i] * (s * (1 - s));
      }
      break;
    case 'gelu':
      // d/dv 0.5·v·(1 + tanh u) = 0.5·(1 + tanh u) + 0.5·v·(1 − tanh² u)·u', u' = K·(1 + 3C·v²)
      for (let i = 0; i < n; i++) {
        const v = x[i];
        const t = Math.tanh(GELU_K * (v + GELU_C * v * v * v));
        dx[i] = dy[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * GELU_K * (1 + 3 * GELU_C * v * v));
      }
      break;
  }
  return dx;
}

/**
 * Softmax cross-entropy over the rows of `logits` (rows×cols) against one-hot or soft
 * `target` rows. loss = mean over rows of Σ_c t·(logsumexp − z); grad = (softmax − target)/rows.
 * Max-subtracted and computed in float64, so large logits neither overflow nor lose the loss;
 * each row's loss is rounded to float32 before the float64 mean.
 */
export function softmaxCrossEntropy(logits: Float32Array, target: Float32Array, rows: number, cols: number): LossResult {
  checkSoftmaxCrossEntropy(logits, target, rows, cols);
  return crossEntropyRows(logits, rows, cols, (r, c) => target[r * cols + c]);
}

/**
 * {@link softmaxCrossEntropy} against class ids: the same loop with the one-hot target
 * implied, so the same bits by construction.
 */
export function softmaxCrossEntropyIds(logits: Float32Array, ids: Float32Array, rows: number, cols: number): LossResult {
  checkSoftmaxCrossEntropyIds(logits, ids, rows, cols);
  return crossEntropyRows(logits, rows, cols, (r, c) => (c === ids[r] ? 1 : 0));
}

/** The loop of both softmax cross-entropies; `target(r, c)` is the target of row r, column c. */
function crossEntropyRows(logits: Float32Array, rows: number, cols: number, target: (r: number, c: number) => number): LossResult {
  const grad = new Float32Array(rows * cols);
  let total = 0;
  for (let r = 0, o = 0; r < rows; r++, o += cols) {
    let max = -Infinity;
    for (let c = 0; c < cols; c++) if (logits[o + c] > max) max = logits[o + c];
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += Math.exp(logits[o + c] - max);
    const logSum = Math.log(sum); // logsumexp − max, so log(0) is never taken
    let rowLoss = 0;
    for (let c = 0; c < cols; c++) {
      const z = logits[o + c] - max;
      const t = target(r, c);
      rowLoss += t * (logSum - z); // −t·log softmax
      // exp(z − logSum) rather than a cached exp/sum: a cached one would change the bits of recorded runs
      grad[o + c] = (Math.exp(z - logSum) - t) / rows;
    }
    total += Math.fround(rowLoss);
  }
  return { loss: total / rows, grad };
}

/** Row softmax with optional scale and causal mask (see Kernels.softmaxRows); float64 inside. */
export function softmaxRows(x: Float32Array, rows: number, cols: number, opts: SoftmaxOptions = {}): Float32Array {
  checkSoftmaxRows(x, rows, cols, opts);
  const scale = opts.scale ?? 1;
  const T = opts.causalT;
  const y = new Float32Array(rows * cols); // masked entries stay 0
  const e = new Float64Array(cols);
  for (let r = 0, o = 0; r < rows; r++, o += cols) {
    const visible = T === undefined ? cols : (r % T) + 1;
    let max = -Infinity;
    for (let c = 0; c < visible; c++) if (scale * x[o + c] > max) max = scale * x[o + c];
    let sum = 0;
    for (let c = 0; c < visible; c++) sum += e[c] = Math.exp(scale * x[o + c] - max);
    for (let c = 0; c < visible; c++) y[o + c] = e[c] / sum;
  }
  return y;
}

/** dx = s·y ⊙ (dy − Σ dy⊙y) per row (see Kernels.softmaxRowsGrad); the dot in float64. */
export function softmaxRowsGrad(y: Float32Array, dy: Float32Array, rows: number, cols: number, opts: Pick<SoftmaxOptions, 'scale'> = {}): Float32Array {
  checkSoftmaxRowsGrad(y, dy, rows, cols, opts.scale);
  const scale = opts.scale ?? 1;
  const dx = new Float32Array(rows * cols);
  for (let r = 0, o = 0; r < rows; r++, o += cols) {
    let dot = 0;
    for (let c = 0; c < cols; c++) dot += dy[o + c] * y[o + c];
    for (let c = 0; c < cols; c++) dx[o + c] = scale * y[o + c] * (dy[o + c] - dot);
  }
  return dx;
}

/** Layer norm over rows (see Kernels.layerNorm): two-pass mean and variance in float64. */
export function layerNorm(x: Float32Array, gamma: Float32Array, beta: Float32Array, rows: number, cols: number, eps: number): LayerNormResult {
  checkLayerNorm(x, gamma, beta, rows, cols, eps);
  const y = new Float32Array(rows * cols);
  const mean = new Float32Array(rows);
  const rstd = new Float32Array(rows);
  for (let r = 0, o = 0; r < rows; r++, o += cols) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += x[o + c];
    const mu = s / cols;
    let ss = 0;
    for (let c = 0; c < cols; c++) ss += (x[o + c] - mu) * (x[o + c] - mu);
    // normalize with the float32 values returned (an assignment expression would give the double)
    mean[r] = mu;
    rstd[r] = 1 / Math.sqrt(ss / cols + eps);
    const m = mean[r];
    const rs = rstd[r];
    for (let c = 0; c < cols; c++) y[o + c] = (x[o + c] - m) * rs * gamma[c] + beta[c];
  }
  return { y, mean, rstd };
}

/** The layer-norm backward (see Kernels.layerNormGrad): row means and column sums in float64. */
export function layerNormGrad(x: Float32Array, gamma: Float32Array, dy: Float32Array, mean: Float32Array, rstd: Float32Array, rows: number, cols: number): LayerNormGrad {
  checkLayerNormGrad(x, gamma, dy, mean, rstd, rows, cols);
  const dx = new Float32Array(rows * cols);
  const dgamma = new Float64Array(cols);
  const dbeta = new Float64Array(cols);
  const xhat = new Float64Array(cols);
  for (let r = 0, o = 0; r < rows; r++, o += cols) {
    const m = mean[r];
    const rs = rstd[r];
    let sg = 0;
    let sgx = 0;
    for (let c = 0; c < cols; c++) {
      const xh = (xhat[c] = (x[o + c] - m) * rs);
      const g = dy[o + c] * gamma[c];
      sg += g;
      sgx += g * xh;
      dgamma[c] += dy[o + c] * xh;
      dbeta[c] += dy[o + c];
    }
    const a = sg / cols;
    const b = sgx / cols;
    for (let c = 0; c < cols; c++) dx[o + c] = rs * (dy[o + c] * gamma[c] - a - xhat[c] * b);
  }
  return { dx, dgamma: Float32Array.from(dgamma), dbeta: Float32Array.from(dbeta) };
}

/** out[r,:] = table[ids[r],:] (exact copies). */
export function gather(table: Float32Array, ids: Float32Array, rows: number, cols: number): Float32Array {
  checkGather(table, ids, rows, cols);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) out.set(table.subarray(ids[r] * cols, ids[r] * cols + cols), r * cols);
  return out;
}

/** Rows of dy summed into their ids' rows of a zeroed table, in float64, in increasing r. */
export function scatterAdd(ids: Float32Array, dy: Float32Array, tableRows: number, cols: number): Float32Array {
  checkScatterAdd(ids, dy, tableRows, cols);
  const acc = new Float64Array(tableRows * cols);
  for (let r = 0; r < ids.length; r++) {
    const o = ids[r] * cols;
    for (let c = 0; c < cols; c++) acc[o + c] += dy[r * cols + c];
  }
  return Float32Array.from(acc);
}

/** Mean squared error over all elements: loss = mean((pred − target)²); grad = 2(pred − target)/n. */
export function mse(pred: Float32Array, target: Float32Array): LossResult {
  checkMse(pred, target);
  const n = pred.length;
  const grad = new Float32Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const d = pred[i] - target[i];
    total += Math.fround(d * d); // float32 terms, float64 sum (the LossResult contract)
    grad[i] = (2 * d) / n;
  }
  return { loss: total / n, grad };
}

/** The {@link Kernels} methods a CPU backend adds to its own matmul. */
export type CpuOps = Omit<Kernels, 'mode' | 'matmul' | 'batchedMatmul' | 'dispose'>;

/**
 * The ops above as {@link Kernels} methods, for a CPU backend to spread next to its
 * matmul, so the wiring is written once too. `guard(op)` runs before each op (the
 * OpenBLAS backend refuses work once disposed). The methods are async, so a bad
 * argument rejects the returned promise instead of throwing at the call.
 */
/**
 * One Adam step (the reference every backend matches bit for bit; see Kernels.adam), in
 * float32 arithmetic: every operation rounded to float32 (`Math.fround` of the double
 * result is the correctly rounded float32 result for + − × ÷ √), so a C loop over
 * floats — vectorized — gives the same bits. PyTorch's form: one √ and one ÷ per weight.
 *   m = β₁m + (1−β₁)g;  v = β₂v + (1−β₂)g²;  p −= (lr/c1)·m / (√v·(1/√c2) + ε)
 */
export function adamStep(p: Float32Array, m0: Float32Array, v0: Float32Array, g: Float32Array, h: AdamStep): { p: Float32Array; m: Float32Array; v: Float32Array } {
  checkSameLength('adam', { p, m: m0, v: v0, g });
  const out = new Float32Array(p.length);
  const m = new Float32Array(p.length);
  const v = new Float32Array(p.length);
  const f = Math.fround;
  const { b1, ob1, b2, ob2, stepSize, invSqrtC2, eps } = adamConstants(h);
  for (let i = 0; i < p.length; i++) {
    const gi = g[i];
    const mi = (m[i] = f(f(b1 * m0[i]) + f(ob1 * gi)));
    const vi = (v[i] = f(f(b2 * v0[i]) + f(f(ob2 * gi) * gi)));
    out[i] = f(p[i] - f(f(stepSize * mi) / f(f(f(Math.sqrt(vi)) * invSqrtC2) + eps)));
  }
  return { p: out, m, v };
}

/** The float32 constants of one Adam step, as every backend computes them (double, then rounded). */
export function adamConstants(h: AdamStep) {
  const f = Math.fround;
  return {
    b1: f(h.beta1),
    ob1: f(1 - h.beta1),
    b2: f(h.beta2),
    ob2: f(1 - h.beta2),
    stepSize: f(h.lr / h.c1),
    invSqrtC2: f(1 / Math.sqrt(h.c2)),
    eps: f(h.eps),
  };
}

/** p − step·m/(√v+ε) in float32 arithmetic (see Kernels.adamPredict). */
export function adamPredict(p: Float32Array, m: Float32Array, v: Float32Array, step: number, eps: number): Float32Array {
  checkSameLength('adamPredict', { p, m, v });
  const out = new Float32Array(p.length);
  const f = Math.fround;
  const s = f(step);
  const e = f(eps);
  for (let i = 0; i < p.length; i++) out[i] = f(p[i] - f(f(s * m[i]) / f(f(Math.sqrt(v[i])) + e)));
  return out;
}

function checkSameLength(op: string, arrays: Record<string, Float32Array>): void {
  const [[first, a], ...rest] = Object.entries(arrays);
  for (const [name, b] of rest) {
    if (!(b instanceof Float32Array) || b.length !== a.length) throw new Error(`${op}: ${name} has ${b?.length} elements, ${first} has ${a.length}`);
  }
}

export function cpuOps(guard: (op: string) => void = () => {}): CpuOps {
  return {
    async adam(p, m, v, g, h) {
      guard('adam');
      return adamStep(p, m, v, g, h);
    },
    async adamPredict(p, m, v, step, eps) {
      guard('adamPredict');
      return adamPredict(p, m, v, step, eps);
    },
    async addBias(x, bias, rows, cols) {
      guard('addBias');
      return addBias(x, bias, rows, cols);
    },
    async sumRows(dy, rows, cols) {
      guard('sumRows');
      return sumRows(dy, rows, cols);
    },
    async activation(fn, x) {
      guard('activation');
      return activation(fn, x);
    },
    async activationGrad(fn, x, dy) {
      guard('activationGrad');
      return activationGrad(fn, x, dy);
    },
    async softmaxCrossEntropy(logits, target, rows, cols) {
      guard('softmaxCrossEntropy');
      return softmaxCrossEntropy(logits, target, rows, cols);
    },
    async mse(pred, target) {
      guard('mse');
      return mse(pred, target);
    },
    async softmaxCrossEntropyIds(logits, ids, rows, cols) {
      guard('softmaxCrossEntropyIds');
      return softmaxCrossEntropyIds(logits, ids, rows, cols);
    },
    async softmaxRows(x, rows, cols, opts) {
      guard('softmaxRows');
      return softmaxRows(x, rows, cols, opts);
    },
    async softmaxRowsGrad(y, dy, rows, cols, opts) {
      guard('softmaxRowsGrad');
      return softmaxRowsGrad(y, dy, rows, cols, opts);
    },
    async layerNorm(x, gamma, beta, rows, cols, eps) {
      guard('layerNorm');
      return layerNorm(x, gamma, beta, rows, cols, eps);
    },
    async layerNormGrad(x, gamma, dy, mean, rstd, rows, cols) {
      guard('layerNormGrad');
      return layerNormGrad(x, gamma, dy, mean, rstd, rows, cols);
    },
    async gather(table, ids, rows, cols) {
      guard('gather');
      return gather(table, ids, rows, cols);
    },
    async scatterAdd(ids, dy, tableRows, cols) {
      guard('scatterAdd');
      return scatterAdd(ids, dy, tableRows, cols);
    },
  };
}
