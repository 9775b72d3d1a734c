/**
 * The non-matmul kernel ops as plain typed-array loops, shared by CPU backends.
 *
 * These ops are memory-bound and O(n), so a tight JS loop is as fast as a native
 * call would be once the call overhead is counted. Every loop runs in a fixed
 * order and sums in float64, so results are bit-identical run to run and
 * machine to machine (V8's Math.exp/tanh/log are its own fdlibm port, not libm).
 *
 * The numerics deliberately match the reference backend (./reference.ts) bit for
 * bit: same formulas, same float64 intermediates, loss terms rounded to float32
 * before summing. So a BLAS PNode and a `js` PNode differ only in matmul.
 *
 * Each function returns a NEW array and never mutates its inputs. Shapes are
 * checked up front (cheap) and a mismatch throws a clear Error: a short array
 * would otherwise read `undefined` and silently turn into NaN. As in the
 * reference, zero rows/cols are allowed (empty result) except for the losses,
 * whose mean over nothing is undefined.
 */
import type { ActivationFn, LossResult } from './types.js';

function checkLen(op: string, name: string, arr: Float32Array, need: number, shape: string): void {
  if (!(arr instanceof Float32Array)) throw new TypeError(`${op}: ${name} must be a Float32Array`);
  if (arr.length !== need) throw new RangeError(`${op}: ${name} has ${arr.length} elements, needs ${need} for ${shape}`);
}

function checkDims(op: string, rows: number, cols: number, min = 0): void {
  if (!Number.isSafeInteger(rows) || rows < min || !Number.isSafeInteger(cols) || cols < min)
    throw new RangeError(`${op}: rows and cols must be integers >= ${min}, got ${rows}x${cols}`);
}

function checkSame(op: string, a: Float32Array, aName: string, b: Float32Array, bName: string): void {
  if (!(a instanceof Float32Array)) throw new TypeError(`${op}: ${aName} must be a Float32Array`);
  if (!(b instanceof Float32Array)) throw new TypeError(`${op}: ${bName} must be a Float32Array`);
  if (a.length !== b.length)
    throw new RangeError(`${op}: ${aName} has ${a.length} elements but ${bName} has ${b.length}`);
}

/** y[r,c] = x[r,c] + bias[c] for a rows×cols matrix. */
export function addBias(x: Float32Array, bias: Float32Array, rows: number, cols: number): Float32Array {
  checkDims('addBias', rows, cols);
  checkLen('addBias', 'x', x, rows * cols, `${rows}x${cols}`);
  checkLen('addBias', 'bias', bias, cols, `${cols} columns`);
  const y = new Float32Array(rows * cols);
  for (let r = 0, o = 0; r < rows; r++, o += cols) {
    for (let c = 0; c < cols; c++) y[o + c] = x[o + c] + bias[c];
  }
  return y;
}

/** Column sums of a rows×cols matrix (the bias gradient): out[c] = Σ_r dy[r,c], summed in float64 row by row. */
export function sumRows(dy: Float32Array, rows: number, cols: number): Float32Array {
  checkDims('sumRows', rows, cols);
  checkLen('sumRows', 'dy', dy, rows * cols, `${rows}x${cols}`);
  // Walk rows in memory order (cache-friendly) and keep float64 partial sums per column.
  const acc = new Float64Array(cols);
  for (let r = 0, o = 0; r < rows; r++, o += cols) {
    for (let c = 0; c < cols; c++) acc[c] += dy[o + c];
  }
  return Float32Array.from(acc);
}

/** Elementwise activation f(x). relu maps −0 and NaN to +0, as every backend does. */
export function activation(fn: ActivationFn, x: Float32Array): Float32Array {
  if (!(x instanceof Float32Array)) throw new TypeError('activation: x must be a Float32Array');
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
    default:
      throw new RangeError(`activation: unknown function ${JSON.stringify(fn as string)}`);
  }
  return y;
}

/** Elementwise activation gradient dx = dy · f'(x), from the activation INPUT x. relu'(0) is taken as 0. */
export function activationGrad(fn: ActivationFn, x: Float32Array, dy: Float32Array): Float32Array {
  checkSame('activationGrad', x, 'x', dy, 'dy');
  const n = x.length;
  const dx = new Float32Array(n);
  switch (fn) {
    case 'relu':
      // dy·0, not a literal 0: gives −0 for negative dy, bit-identical to the reference
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
    default:
      throw new RangeError(`activationGrad: unknown function ${JSON.stringify(fn as string)}`);
  }
  return dx;
}

/**
 * Softmax cross-entropy over the rows of `logits` (rows×cols) against one-hot or soft
 * `target` rows. loss = mean over rows of Σ_c t·(logsumexp − z); grad = (softmax − target)/rows.
 * Max-subtracted and computed in float64, so large logits neither overflow nor lose the loss;
 * each row's loss is rounded to float32 before the float64 mean (as in the reference).
 */
export function softmaxCrossEntropy(logits: Float32Array, target: Float32Array, rows: number, cols: number): LossResult {
  checkDims('softmaxCrossEntropy', rows, cols, 1);
  checkLen('softmaxCrossEntropy', 'logits', logits, rows * cols, `${rows}x${cols}`);
  checkLen('softmaxCrossEntropy', 'target', target, rows * cols, `${rows}x${cols}`);
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
      const t = target[o + c];
      rowLoss += t * (logSum - z); // −t·log softmax
      // exp(z − logSum) rather than a cached exp/sum: identical bits to the reference
      grad[o + c] = (Math.exp(z - logSum) - t) / rows;
    }
    total += Math.fround(rowLoss);
  }
  return { loss: total / rows, grad };
}

/** Mean squared error over all elements: loss = mean((pred − target)²); grad = 2(pred − target)/n. */
export function mse(pred: Float32Array, target: Float32Array): LossResult {
  checkSame('mse', pred, 'pred', target, 'target');
  const n = pred.length;
  if (n === 0) throw new RangeError('mse: pred and target are empty');
  const grad = new Float32Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const d = pred[i] - target[i];
    total += Math.fround(d * d); // float32 terms, float64 sum (the LossResult contract)
    grad[i] = (2 * d) / n;
  }
  return { loss: total / n, grad };
}
