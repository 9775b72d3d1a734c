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

/** The argument of gelu's tanh: √(2/π)·(v + 0.044715·v³). */
const geluU = (v: number) => Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3);

export function act64(fn: ActivationFn, v: number): number {
  if (fn === 'relu') return Math.max(v, 0);
  if (fn === 'tanh') return (Math.exp(2 * v) - 1) / (Math.exp(2 * v) + 1);
  // gelu as v·σ(2u) (the same function: (1 + tanh u)/2 = σ(2u)); exp(−2u) → ∞ gives 0, no NaN
  if (fn === 'gelu') return v / (1 + Math.exp(-2 * geluU(v)));
  return Math.exp(v) / (1 + Math.exp(v));
}

/** f'(v); relu'(0) is taken as 0, the convention of the kernel interface. */
export function actGrad64(fn: ActivationFn, v: number): number {
  if (fn === 'relu') return v > 0 ? 1 : 0;
  if (fn === 'tanh') return 1 / Math.cosh(v) ** 2;
  if (fn === 'gelu') {
    const u = geluU(v);
    const du = Math.sqrt(2 / Math.PI) * (1 + 3 * 0.044715 * v * v);
    return 0.5 * (1 + Math.tanh(u)) + (0.5 * v * du) / Math.cosh(u) ** 2;
  }
  const s = act64('sigmoid', v);
  return s * (1 - s);
}

/** `batch` products of {@link matmul64}, one after another, with their magnitudes. */
export function batchedMatmul64(a: Float32Array, b: Float32Array, batch: number, m: number, k: number, n: number, transA = false, transB = false) {
  const c = new Float64Array(batch * m * n);
  const mag = new Float64Array(batch * m * n);
  for (let i = 0; i < batch; i++) {
    const r = matmul64(a.subarray(i * m * k, (i + 1) * m * k), b.subarray(i * k * n, (i + 1) * k * n), m, k, n, transA, transB);
    c.set(r.c, i * m * n);
    mag.set(r.mag, i * m * n);
  }
  return { c, mag };
}

/** Row r of a causal block of T rows sees columns ≤ r mod T; no mask: all. */
const visibleCols = (r: number, cols: number, causalT?: number) => (causalT === undefined ? cols : (r % causalT) + 1);

/** Row softmax of scale·x as exp(scale·x − logsumexp) (masked entries 0). */
export function softmaxRows64(x: Float32Array, rows: number, cols: number, scale = 1, causalT?: number): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const n = visibleCols(r, cols, causalT);
    const z = Array.from(x.subarray(r * cols, r * cols + n), (v) => scale * v);
    const max = Math.max(...z);
    const lse = max + Math.log(z.reduce((s, v) => s + Math.exp(v - max), 0));
    z.forEach((v, c) => (y[r * cols + c] = Math.exp(v - lse)));
  }
  return y;
}

/**
 * The softmax backward through its full Jacobian, dx_j = scale·Σ_i dy_i·y_i·(δ_ij − y_j):
 * O(cols²), another route than the kernels' dot product. Plus Σ_i |dy_i·∂y_i/∂x_j| per
 * element, the scale float32 error grows with.
 */
export function softmaxRowsGrad64(y: Float32Array, dy: Float32Array, rows: number, cols: number, scale = 1) {
  const dx = new Float64Array(rows * cols);
  const mag = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let j = 0; j < cols; j++) {
      let s = 0;
      let g = 0;
      for (let i = 0; i < cols; i++) {
        const t = dy[o + i] * y[o + i] * ((i === j ? 1 : 0) - y[o + j]);
        s += t;
        g += Math.abs(t);
      }
      dx[o + j] = scale * s;
      mag[o + j] = scale * g;
    }
  }
  return { dx, mag };
}

/** Layer norm in float64 (variance as E[(x − mean)²] over the row, biased). */
export function layerNorm64(x: Float32Array, gamma: Float32Array, beta: Float32Array, rows: number, cols: number, eps: number) {
  const y = new Float64Array(rows * cols);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const row = Array.from(x.subarray(r * cols, (r + 1) * cols));
    const mu = row.reduce((s, v) => s + v, 0) / cols;
    const variance = row.reduce((s, v) => s + (v - mu) ** 2, 0) / cols;
    mean[r] = mu;
    rstd[r] = 1 / Math.sqrt(variance + eps);
    row.forEach((v, c) => (y[r * cols + c] = gamma[c] * ((v - mu) * rstd[r]) + beta[c]));
  }
  return { y, mean, rstd };
}

/**
 * The layer-norm backward in float64 from x (mean and rstd recomputed, not taken from a
 * kernel), as the paper's dx = rstd/N·(N·g − Σg − x̂·Σ g·x̂), g = dy·gamma; with
 * per-element magnitudes for the error bounds.
 */
export function layerNormGrad64(x: Float32Array, gamma: Float32Array, dy: Float32Array, rows: number, cols: number, eps: number) {
  const { mean, rstd } = layerNorm64(x, gamma, new Float32Array(cols), rows, cols, eps);
  const dx = new Float64Array(rows * cols);
  const dxMag = new Float64Array(rows * cols);
  const dgamma = new Float64Array(cols);
  const dgammaMag = new Float64Array(cols);
  const dbeta = new Float64Array(cols);
  const dbetaMag = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const xh = Array.from({ length: cols }, (_, c) => (x[o + c] - mean[r]) * rstd[r]);
    const g = Array.from({ length: cols }, (_, c) => dy[o + c] * gamma[c]);
    const sg = g.reduce((s, v) => s + v, 0);
    const sgx = g.reduce((s, v, c) => s + v * xh[c], 0);
    const ag = g.reduce((s, v) => s + Math.abs(v), 0);
    const agx = g.reduce((s, v, c) => s + Math.abs(v * xh[c]), 0);
    for (let c = 0; c < cols; c++) {
      dx[o + c] = (rstd[r] / cols) * (cols * g[c] - sg - xh[c] * sgx);
      dxMag[o + c] = (rstd[r] / cols) * (cols * Math.abs(g[c]) + ag + Math.abs(xh[c]) * agx);
      dgamma[c] += dy[o + c] * xh[c];
      dgammaMag[c] += Math.abs(dy[o + c] * xh[c]);
      dbeta[c] += dy[o + c];
      dbetaMag[c] += Math.abs(dy[o + c]);
    }
  }
  return { dx, dxMag, dgamma, dgammaMag, dbeta, dbetaMag };
}

/** Σ of dy rows into their ids' rows, with Σ|terms| per cell. */
export function scatterAdd64(ids: Float32Array, dy: Float32Array, tableRows: number, cols: number) {
  const sum = new Float64Array(tableRows * cols);
  const mag = new Float64Array(tableRows * cols);
  ids.forEach((id, r) => {
    for (let c = 0; c < cols; c++) {
      sum[id * cols + c] += dy[r * cols + c];
      mag[id * cols + c] += Math.abs(dy[r * cols + c]);
    }
  });
  return { sum, mag };
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
