/**
 * The OpenBLAS kernel backend: matmul through `cblas_sgemm` in a small N-API addon
 * (native/blas), Adam in C there too (bit-identical to the JS one), every other op from ./typed-array-ops.ts, the same code the `js`
 * reference backend runs: a BLAS PNode and a `js` PNode differ only in matmul.
 *
 * OpenBLAS runs its own thread pool; we set its size deliberately and put no worker
 * threads on top. The core kernel set and thread count are part of the mode (`blas:openblas-haswell-2t`) because
 * the kernel-mode determinism contract is stated per mode, and sgemm results differ
 * in the last bits between thread counts (measured). They also differ between the CPU
 * kernel sets OpenBLAS picks at load (`coreName`, e.g. Haswell vs SkylakeX; override
 * with env OPENBLAS_CORETYPE), which is why `coreName` is exposed too.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { checkBatchedMatmul, checkMatmul } from './checks.js';
import { cpuOps } from './typed-array-ops.js';
import type { Kernels, MatmulOptions } from './types.js';

/** What native/blas/dcnr_blas.c exports. */
interface BlasAddon {
  sgemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: Float32Array,
    b: Float32Array,
    beta: number,
    c: Float32Array,
  ): void;
  adam(p: Float32Array, m0: Float32Array, v0: Float32Array, g: Float32Array, out: Float32Array, m: Float32Array, v: Float32Array, lr: number, beta1: number, beta2: number, eps: number, c1: number, c2: number): void;
  adamPredict(p: Float32Array, m: Float32Array, v: Float32Array, out: Float32Array, step: number, eps: number): void;
  setThreads(n: number): void;
  getThreads(): number;
  config(): string;
  coreName(): string;
}

/**
 * A matmul of fewer multiply-adds (m·n·k) than this runs on one OpenBLAS thread,
 * whatever the thread count. Measured here (bench kernels, SkylakeX): one thread is
 * faster up to 256² (146 vs 117 GFLOP/s; mnist-mlp's dense fwd+bwd 89 vs 70), two from
 * 512² (203 vs 155). And on a machine several PNodes share, a two-thread sgemm waits
 * for its second thread whenever another process holds the core: mnist-mlp on 3 PNodes
 * went from 4,350 to 5,060 samples/s, one process from 6,100 to 6,990. wide-mlp's
 * products (≥ 411M) keep every thread. A pure function of the shape, so still
 * deterministic per mode; the mode's `Nt` is the most threads a matmul uses.
 */
export const ONE_THREAD_BELOW = 1 << 25;

/** Where native/blas/build.mjs puts the addon, relative to this file. */
export const BLAS_ADDON_PATH = fileURLToPath(new URL('../../native/blas/build/Release/dcnr_blas.node', import.meta.url));

export interface BlasKernelOptions {
  /** OpenBLAS thread count. @default env `DCNR_BLAS_THREADS`, else `os.availableParallelism()` */
  threads?: number;
}

/** The OpenBLAS backend: a {@link Kernels} plus what it runs on. */
export interface BlasKernels extends Kernels {
  /** OpenBLAS threads used by matmul. */
  readonly threads: number;
  /** `openblas_get_config()`, e.g. `OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64`. */
  readonly config: string;
  /** The CPU kernel set OpenBLAS chose (`openblas_get_corename()`), e.g. `Haswell`. Same bits need the same core. */
  readonly coreName: string;
}

let addon: BlasAddon | undefined;

/**
 * How long an idle OpenBLAS thread spins before it sleeps, as OpenBLAS's own env knob
 * (2^N cycles; its default N = 28 is ≈0.1 s). A VNode calls sgemm for a few hundred µs
 * and then does messaging for milliseconds, so with the default the pool's second
 * thread spun (sched_yield) through all of it, taking a core from the actor and
 * nats-server: measured on mnist-mlp, one process, 2 threads: 7.3 s of system time in
 * 600 steps, 3,550 samples/s; at N = 4, 1.6 s and 4,220 samples/s, the same bits.
 * OpenBLAS reads it when the library loads, so it is set before the addon is; a value
 * the user set is kept.
 */
const BLAS_THREAD_TIMEOUT = '4';

function loadAddon(): BlasAddon {
  if (addon) return addon;
  process.env.OPENBLAS_THREAD_TIMEOUT ??= BLAS_THREAD_TIMEOUT;
  try {
    addon = createRequire(import.meta.url)(BLAS_ADDON_PATH) as BlasAddon;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'MODULE_NOT_FOUND')
      throw new Error(
        `OpenBLAS addon not built: run \`npm run build:native\` (needs build-essential and libopenblas-dev); missing ${BLAS_ADDON_PATH}`,
      );
    throw new Error(`OpenBLAS addon failed to load from ${BLAS_ADDON_PATH}: ${err.message}`);
  }
  return addon;
}

function resolveThreads(requested: number | undefined): number {
  if (requested !== undefined) {
    if (!Number.isInteger(requested) || requested < 1)
      throw new RangeError(`createBlasKernels: threads must be a positive integer, got ${requested}`);
    return requested;
  }
  const env = process.env.DCNR_BLAS_THREADS;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1)
      throw new RangeError(`DCNR_BLAS_THREADS must be a positive integer, got ${JSON.stringify(env)}`);
    return n;
  }
  return availableParallelism();
}

/**
 * Creates the OpenBLAS backend. Throws a clear Error if the addon is not built
 * (callers fall back to another backend and report it).
 */
export async function createBlasKernels(opts: BlasKernelOptions = {}): Promise<BlasKernels> {
  const blas = loadAddon();
  const wanted = resolveThreads(opts.threads);
  blas.setThreads(wanted);
  // OpenBLAS may clamp (MAX_THREADS of its build): report what it actually uses.
  const threads = blas.getThreads();
  const config = blas.config();
  const coreName = blas.coreName();
  let disposed = false;

  const live = (op: string): void => {
    if (disposed) throw new Error(`${op}: OpenBLAS kernels were disposed`);
  };

  return {
    // The core kernel set is in the mode too: sgemm bits differ between, e.g., Haswell
    // and Cooperlake kernels, so two PNodes agree bit for bit only when both match.
    mode: `blas:openblas-${coreName.toLowerCase()}-${threads}t`,
    threads,
    config,
    coreName,

    async matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number, o?: MatmulOptions): Promise<Float32Array> {
      live('matmul');
      // The OpenBLAS thread count is process-wide: another instance may have changed
      // it, and results are only bit-reproducible for a fixed count. Pin it for this
      // call (cheap): one thread for a small product, `threads` for a large one.
      const use = m * n * k < ONE_THREAD_BELOW ? 1 : threads;
      if (blas.getThreads() !== use) blas.setThreads(use);
      const transA = o?.transA === true;
      const transB = o?.transB === true;
      checkMatmul(a, b, m, k, n);
      const c = new Float32Array(m * n);
      // An empty product (k = 0) is all zeros; sgemm itself wants every dim >= 1.
      if (m === 0 || n === 0 || k === 0) return c;
      // beta = 0: OpenBLAS overwrites c. The addon re-checks types and lengths.
      blas.sgemm(transA, transB, m, n, k, 1, a, b, 0, c);
      return c;
    },

    // One sgemm per slice, on subarray views of the inputs and the result (the addon
    // reads a view's own offset): slice i gets exactly the call, thread count and bits
    // of `matmul` on that slice. No cblas_sgemm_batch: OpenBLAS 0.3.21 (Debian) lacks it,
    // and at attention's sizes (T×T per head) a call costs ≈0.2 µs, not worth a C loop.
    async batchedMatmul(a, b, batch, m, k, n, o?: MatmulOptions): Promise<Float32Array> {
      live('batchedMatmul');
      checkBatchedMatmul(a, b, batch, m, k, n);
      const c = new Float32Array(batch * m * n);
      if (m === 0 || n === 0 || k === 0) return c;
      const use = m * n * k < ONE_THREAD_BELOW ? 1 : threads;
      if (blas.getThreads() !== use) blas.setThreads(use);
      const transA = o?.transA === true;
      const transB = o?.transB === true;
      for (let i = 0; i < batch; i++) {
        blas.sgemm(transA, transB, m, n, k, 1, a.subarray(i * m * k, (i + 1) * m * k), b.subarray(i * k * n, (i + 1) * k * n), 0, c.subarray(i * m * n, (i + 1) * m * n));
      }
      return c;
    },

    // Every other op, the new transformer ones too (softmaxRows, layerNorm, gather,
    // scatterAdd, …), is the shared typed-array code: memory-bound loops that a native
    // call would not speed up, and the same bits as the `js` backend.
    ...cpuOps(live),

    // The optimizer in C: the same double arithmetic in the same order as the JS
    // reference (bit-identical, tested), several times faster on big layers.
    async adam(p, m0, v0, g, h) {
      live('adam');
      const out = new Float32Array(p.length);
      const m = new Float32Array(p.length);
      const v = new Float32Array(p.length);
      blas.adam(p, m0, v0, g, out, m, v, h.lr, h.beta1, h.beta2, h.eps, h.c1, h.c2);
      return { p: out, m, v };
    },
    async adamPredict(p, m, v, step, eps) {
      live('adamPredict');
      const out = new Float32Array(p.length);
      blas.adamPredict(p, m, v, out, step, eps);
      return out;
    },

    dispose(): void {
      // Nothing native to free: the addon holds no per-instance state.
      disposed = true;
    },
  };
}
