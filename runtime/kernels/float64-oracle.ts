/**
 * Independent float64 formulas the kernel tests check every backend against.
 * Test code only: nothing in the runtime imports this file.
 *
 * Why a separate file: the reference (`js`) and OpenBLAS backends now run the same
 * non-matmul code (./typed-array-ops.ts), so comparing one with the other proves
 * nothing. These are the textbook formulas, written differently from the kernels on
 * purpose where a different formula exists (tanh through exp, sigmoid as eˣ/(1+eˣ),
 * tanh' as 1/cosh²), all in float64 with no float32 rounding, so they share no bug
 * with the code under test. Plain arrays out, so a caller can state its own tolerance.
 *
 * Also here: {@link bitsEqual}, the determinism check both kernel test files use.
 *
 * Valid ranges: the exp-based tanh and sigmoid overflow to NaN for |v| > 350; the
 * tests stay well inside (|v| ≤ 40).
 */
import type { ActivationFn } from './types.js';

/** op(A)·op(B), plus Σ_p |op(A)_ip · op(B)_pj| per element (the scale float32 rounding error grows with). */
export function matmul64(a: Float32Array, b: Float32Array, m: number, k: number, n: number, transA = false, transB = false) {
  const c = new Float64Array(m * n);
  const mag = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      let g = 0;
      for (let p = 0; p < k; p++) {
        const x = transA ? a[p * m + i] : a[i * k + p];
        const y = transB ? b[j * k + p] : b[p * n + j];
        s += x * y;
        g += Math.abs(x * y);
      }
      c[i * n + j] = s;
      mag[i * n + j] = g;
    }
  return { c, mag };
}

export function addBias64(x: Float32Array, bias: Float32Array, cols: number): Float64Array {
  return Float64Array.from(x, (v, i) => v + bias[i % cols]);
}

/** Column sums, plus Σ_r |dy[r,c]| per column for the error bound. */
export function sumRows64(dy: Float32Array, cols: number) {
  const sum = new Float64Array(cols);
  const mag = new Float64Array(cols);
  dy.forEach((v, i) => {
    sum[i % cols] += v;
    mag[i % cols] += Math.abs(v);
  });
  return { sum, mag };
}

export function act64(fn: ActivationFn, v: number): number {
  if (fn === 'relu') return Math.max(v, 0);
  if (fn === 'tanh') return (Math.exp(2 * v) - 1) / (Math.exp(2 * v) + 1);
  return Math.exp(v) / (1 + Math.exp(v));
}

/** f'(v); relu'(0) is taken as 0, the convention of the kernel interface. */
export function actGrad64(fn: ActivationFn, v: number): number {
  if (fn === 'relu') return v > 0 ? 1 : 0;
  if (fn === 'tanh') return 1 / Math.cosh(v) ** 2;
  const s = act64('sigmoid', v);
  return s * (1 - s);
}

/**
 * Mean softmax cross-entropy over rows and its gradient (softmax − t)/rows, through
 * log-sum-exp with the row max taken out: the stable form, so huge logits give the
 * exact values (e.g. 2000 for a one-hot row whose target is 2000 below the max).
 */
export function softmaxCrossEntropy64(logits: Float32Array, target: Float32Array, rows: number, cols: number) {
  let loss = 0;
  const grad = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = Array.from(logits.subarray(r * cols, (r + 1) * cols));
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
    for (let c = 0; c < cols; c++) {
      const t = target[r * cols + c];
      loss -= t * (row[c] - lse);
      grad[r * cols + c] = (Math.exp(row[c] - lse) - t) / rows;
    }
  }
  return { loss: loss / rows, grad };
}

export function mse64(pred: Float32Array, target: Float32Array) {
  const n = pred.length;
  let loss = 0;
  for (let i = 0; i < n; i++) loss += (pred[i] - target[i]) ** 2;
  return { loss: loss / n, grad: Float64Array.from(pred, (p, i) => (2 * (p - target[i])) / n) };
}

/** Same length and the same bits in every element (so −0 ≠ +0 and NaN payloads count): the determinism check. */
export function bitsEqual(x: Float32Array, y: Float32Array): boolean {
  if (x.length !== y.length) return false;
  const a = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const b = new Uint32Array(y.buffer, y.byteOffset, y.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
