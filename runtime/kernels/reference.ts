/**
 * The reference kernel backend (mode `js`): a plain-loop matmul, written to be
 * obviously correct rather than fast, beside the CPU ops every CPU backend shares
 * (./typed-array-ops.ts). It is the fallback when nothing faster loads, and the
 * matmul oracle the other backends are tested against.
 *
 * Numerics (documented because tests and determinism depend on them):
 * - matmul: every output element is a sum accumulated in float64 in ascending
 *   index order, rounded to float32 once at the end. float64 makes this the
 *   most accurate matmul, which is what an oracle should be.
 * - every other op: as documented in ./typed-array-ops.ts (float64 intermediates,
 *   one float32 rounding per output element).
 * Everything is a fixed sequence of IEEE operations, so results are
 * deterministic (bit-identical for the same inputs on any machine).
 */
import { checkMatmul } from './checks.js';
import { cpuOps } from './typed-array-ops.js';
import type { Kernels, MatmulOptions } from './types.js';

/** The plain-JS backend: deterministic, float64-accumulating. */
export function createReferenceKernels(): Kernels {
  return {
    mode: 'js',

    async matmul(a, b, m, k, n, opts: MatmulOptions = {}) {
      checkMatmul(a, b, m, k, n);
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
    },

    ...cpuOps(),

    dispose() {
      // nothing to release: no compiled kernels, no device
    },
  };
}
