/**
 * The reference kernel backend (mode `js`): plain loops, written to be obviously
 * correct rather than fast. It is the oracle the other backends are tested
 * against and the fallback when nothing faster loads.
 *
 * Numerics (documented because tests and determinism depend on them):
 * - matmul, sumRows: every output element is a sum accumulated in float64 in
 *   ascending index order, rounded to float32 once at the end. float64 makes
 *   this the most accurate backend, which is what an oracle should be.
 * - elementwise ops and losses: computed in float64 from the float32 inputs,
 *   each output element rounded to float32 once.
 * - loss scalars: per-row (softmax CE) or per-element (MSE) terms rounded to
 *   float32, then summed in float64 in index order.
 * Everything is a fixed sequence of IEEE operations, so results are
 * deterministic (bit-identical for the same inputs on any machine).
 */
import type { ActivationFn, Kernels, LossResult, MatmulOptions } from './types.js';

/** Throws a clear error when an array's length does not match the shape it is said to have. */
export function checkLength(op: string, name: string, arr: Float32Array, expected: number): void {
  if (!(arr instanceof Float32Array)) {
    throw new TypeError(`${op}: ${name} must be a Float32Array`);
  }
  if (arr.length !== expected) {
    throw new RangeError(`${op}: ${name} has ${arr.length} elements, expected ${expected}`);
  }
}

/** Throws unless every dimension is a non-negative safe integer. */
export function checkDims(op: string, dims: Record<string, number>): void {
  for (const [name, v] of Object.entries(dims)) {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new RangeError(`${op}: ${name} must be a non-negative integer, got ${v}`);
    }
  }
}

/** Validates matmul arguments against the interface's shape convention (shared by every backend). */
export function checkMatmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): void {
  checkDims('matmul', { m, k, n });
  checkLength('matmul', 'a', a, m * k);
  checkLength('matmul', 'b', b, k * n);
}

/** Validates a loss call: same length, at least one element (a mean over nothing is undefined). */
export function checkLoss(op: string, pred: Float32Array, target: Float32Array, rows: number, cols: number): void {
  checkDims(op, { rows, cols });
  if (rows === 0 || cols === 0) throw new RangeError(`${op}: needs at least one row and one column`);
  checkLength(op, 'prediction', pred, rows * cols);
  checkLength(op, 'target', target, rows * cols);
}

/** Validates an activation name (the type is a string union, but callers may pass data from the wire). */
export function checkActivation(fn: string): asserts fn is ActivationFn {
  if (fn !== 'relu' && fn !== 'tanh' && fn !== 'sigmoid') {
    throw new RangeError(`unknown activation "${fn}" (valid: relu, tanh, sigmoid)`);
  }
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** The plain-JS backend: deterministic, float64-accumulating, the test oracle. */
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

    async addBias(x, bias, rows, cols) {
      checkDims('addBias', { rows, cols });
      checkLength('addBias', 'x', x, rows * cols);
      checkLength('addBias', 'bias', bias, cols);
      const out = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) out[r * cols + c] = x[r * cols + c] + bias[c];
      }
      return out;
    },

    async sumRows(dy, rows, cols) {
      checkDims('sumRows', { rows, cols });
      checkLength('sumRows', 'dy', dy, rows * cols);
      const acc = new Float64Array(cols);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) acc[c] += dy[r * cols + c];
      }
      return Float32Array.from(acc);
    },

    async activation(fn, x) {
      checkActivation(fn);
      checkLength('activation', 'x', x, x.length);
      const out = new Float32Array(x.length);
      for (let i = 0; i < x.length; i++) {
        const v = x[i];
        // relu as `v > 0 ? v : 0` (not Math.max) so -0 and NaN map to +0 on every backend
        out[i] = fn === 'relu' ? (v > 0 ? v : 0) : fn === 'tanh' ? Math.tanh(v) : sigmoid(v);
      }
      return out;
    },

    async activationGrad(fn, x, dy) {
      checkActivation(fn);
      checkLength('activationGrad', 'x', x, x.length);
      checkLength('activationGrad', 'dy', dy, x.length);
      const out = new Float32Array(x.length);
      for (let i = 0; i < x.length; i++) {
        const v = x[i];
        let d: number;
        if (fn === 'relu') {
          d = v > 0 ? 1 : 0; // the subgradient at 0 is taken as 0
        } else if (fn === 'tanh') {
          const t = Math.tanh(v);
          d = 1 - t * t;
        } else {
          const s = sigmoid(v);
          d = s * (1 - s);
        }
        out[i] = dy[i] * d;
      }
      return out;
    },

    async softmaxCrossEntropy(logits, target, rows, cols): Promise<LossResult> {
      checkLoss('softmaxCrossEntropy', logits, target, rows, cols);
      const grad = new Float32Array(rows * cols);
      let total = 0;
      for (let r = 0; r < rows; r++) {
        const base = r * cols;
        let max = -Infinity;
        for (let c = 0; c < cols; c++) if (logits[base + c] > max) max = logits[base + c];
        let sum = 0;
        for (let c = 0; c < cols; c++) sum += Math.exp(logits[base + c] - max);
        const logSum = Math.log(sum);
        // −Σ t·log softmax = Σ t·(logSum − z), z = logit − max: never takes log(0)
        let rowLoss = 0;
        for (let c = 0; c < cols; c++) {
          const z = logits[base + c] - max;
          const t = target[base + c];
          rowLoss += t * (logSum - z);
          grad[base + c] = (Math.exp(z - logSum) - t) / rows;
        }
        total += Math.fround(rowLoss);
      }
      return { loss: total / rows, grad };
    },

    async mse(pred, target) {
      checkLoss('mse', pred, target, 1, pred.length);
      const n = pred.length;
      const grad = new Float32Array(n);
      let total = 0;
      for (let i = 0; i < n; i++) {
        const d = pred[i] - target[i];
        total += Math.fround(d * d);
        grad[i] = (2 * d) / n;
      }
      return { loss: total / n, grad };
    },

    dispose() {
      // nothing to release: no compiled kernels, no device
    },
  };
}
