/**
 * The reference kernel backend (mode `js`): a plain-loop matmul, written to be
 * obviously correct rather than fast, beside the CPU ops every CPU backend shares
 * (./typed-array-ops.ts). It is the fallback when nothing faster loads, and the
 * matmul oracle the other backends are tested against.
 *
 * Numerics (documented because tests and determinism depend on them):
 * - matmul (and batchedMatmul, slice by slice): every output element is a sum accumulated in float64 in ascending
 *   index order, rounded to float32 once at the end. float64 makes this the
 *   most accurate matmul, which is what an oracle should be.
 * - every other op: as documented in ./typed-array-ops.ts (float64 intermediates,
 *   one float32 rounding per output element).
 * Everything is a fixed sequence of IEEE operations, so results are
 * deterministic (bit-identical for the same inputs on any machine).
 */
import { checkBatchedMatmul, checkMatmul } from './checks.js';
import { cpuOps } from './typed-array-ops.js';
import type { Kernels, MatmulOptions } from './types.js';

/** op(a)·op(b), each element a float64 sum in ascending p order rounded once (arguments already checked). */
function matmul64(a: Float32Array, b: Float32Array, m: number, k: number, n: number, opts: MatmulOptions): Float32Array {
  const transA = opts.transA === true;
  const transB = opts.transB === true;
  const out = new Float32Array(m * n);
  // One float64 accumulator per output element of the current row; the
  // p loop is outermost so memory access stays mostly sequential, but each
  // acc[j] still sums its terms in ascending p order: the same order as
  // the textbook triple loop.
  const acc = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    acc.fill(0);
    for (let p = 0; p < k; p++) {
      const av = transA ? a[p * m + i] : a[i * k + p];
      if (transB) {
        for (let j = 0; j < n; j++) acc[j] += av * b[j * k + p];
      } else {
        const row = p * n;
        for (let j = 0; j < n; j++) acc[j] += av * b[row + j];
      }
    }
    for (let j = 0; j < n; j++) out[i * n + j] = acc[j];
  }
  return out;
}

/** The plain-JS backend: deterministic, float64-accumulating. */
export function createReferenceKernels(): Kernels {
  return {
    mode: 'js',

    async matmul(a, b, m, k, n, opts: MatmulOptions = {}) {
      checkMatmul(a, b, m, k, n);
      return matmul64(a, b, m, k, n, opts);
    },

    // Slice by slice through the same matmul: slice i has the bits of `matmul` on it.
    async batchedMatmul(a, b, batch, m, k, n, opts: MatmulOptions = {}) {
      checkBatchedMatmul(a, b, batch, m, k, n);
      const out = new Float32Array(batch * m * n);
      for (let i = 0; i < batch; i++) {
        const c = matmul64(a.subarray(i * m * k, (i + 1) * m * k), b.subarray(i * k * n, (i + 1) * k * n), m, k, n, opts);
        out.set(c, i * m * n);
      }
      return out;
    },

    ...cpuOps(),

    dispose() {
      // nothing to release: no compiled kernels, no device
    },
  };
}
