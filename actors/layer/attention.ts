/**
 * `layer.attention`: causal multi-head self-attention as one VNode (GPT-2's `attn`),
 * [batch, time, C] → [batch, time, C]:
 *   Q, K, V = x·Wq + bq, x·Wk + bk, x·Wv + bv, each split into `heads` heads of D = C/heads;
 *   per head P = softmax(Q·Kᵀ/√D) with a causal mask (time t sees times ≤ t), O = P·V;
 *   y = concat_heads(O)·Wo + bo.
 * The mask is the kernel's (`softmaxRows` `causalT`): masked scores get exactly zero
 * probability and pass no gradient, with no −∞ anywhere.
 *
 * Parameters Wq, Wk, Wv, Wo (C×C, stored in×out like layer.dense's W) start
 * Xavier-normal, std √(2/(C + C)) = √(1/C); the biases start at 0.
 *
 * Q, K and V come out of ONE matmul against [Wq | Wk | Wv] (C×3C, the columns side by
 * side, as GPT-2's c_attn), and dx of one matmul against its transpose: the three
 * input gradients sum inside the product instead of in three more passes. The parameters
 * stay separate tensors (named as a model spec would name them); stacking them is a copy.
 *
 * Staleness: as layer.dense. The forward runs with every parameter predicted ahead
 * (weight prediction) and stashes the stacked [Wq | Wk | Wv] and the Wo it used, so dx is
 * the gradient of the forward that made the activations (weight stashing).
 *
 * The stash holds x and Q|K|V (B·T·4C floats) and those weights; the attention
 * probabilities (B·heads·T² floats, the largest activation for long sequences) and the
 * head outputs are recomputed in backward from Q, K, V with the same kernel calls as
 * the forward, so they are the forward's bits. The stash then grows with T, not T².
 */
import { z } from 'zod';
import type { Kernels } from '../../runtime/kernels/types.js';
import { applyUpdate, DEFAULT_OPTIMIZER, initSlots, OptimizerConfig, predictParameter, slotNames } from '../../runtime/optim.js';
import type { Tensor } from '../../runtime/tensor.js';
import { defineVNodeType, type Tensors } from '../../runtime/vnode-type.js';

const AttentionConfig = z.object({
  /** Attention heads; the width C (the input's last axis) must be a multiple of it. */
  heads: z.number().int().positive().max(1 << 10),
  optimizer: OptimizerConfig.default(DEFAULT_OPTIMIZER),
});
type AttentionConfig = z.infer<typeof AttentionConfig>;

const WEIGHTS = ['Wq', 'Wk', 'Wv', 'Wo'] as const;
const BIASES = ['bq', 'bk', 'bv', 'bo'] as const;

function checkWidth(width: number, heads: number): void {
  if (width % heads !== 0) throw new Error(`layer.attention: width ${width} is not divisible by heads ${heads}`);
}

/** Matrices of `rows`×`cols` side by side: row i of the result is row i of each, in order. */
export function stackColumns(mats: readonly Float32Array[], rows: number, cols: number): Float32Array {
  const n = mats.length;
  const out = new Float32Array(rows * n * cols);
  for (let i = 0; i < rows; i++) mats.forEach((m, j) => out.set(m.subarray(i * cols, (i + 1) * cols), (i * n + j) * cols));
  return out;
}

/** The inverse of {@link stackColumns}: `n` matrices of `rows`×`cols` from a rows×(n·cols) one. */
export function splitColumns(x: Float32Array, rows: number, cols: number, n: number): Float32Array[] {
  const out = Array.from({ length: n }, () => new Float32Array(rows * cols));
  for (let i = 0; i < rows; i++) out.forEach((m, j) => m.set(x.subarray((i * n + j) * cols, (i * n + j + 1) * cols), i * cols));
  return out;
}

/** Shapes of one call: B sequences of T steps, C channels in H heads of D. */
interface Dims {
  B: number;
  T: number;
  C: number;
  H: number;
  D: number;
}

/**
 * The C = H·D columns from `offset` of a (B·T)×`cols` matrix, as [B, H, T, D]: one T×D
 * matrix per (sequence, head), the layout batchedMatmul takes. A copy, no arithmetic.
 */
function toHeads(src: Float32Array, cols: number, offset: number, { B, T, H, D }: Dims): Float32Array {
  const out = new Float32Array(B * H * T * D);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let t = 0; t < T; t++) {
        const from = (b * T + t) * cols + offset + h * D;
        out.set(src.subarray(from, from + D), ((b * H + h) * T + t) * D);
      }
  return out;
}

/** The inverse of {@link toHeads}: [B, H, T, D] into the C columns from `offset` of `dst` ((B·T)×`cols`). */
function fromHeads(heads: Float32Array, dst: Float32Array, cols: number, offset: number, { B, T, H, D }: Dims): void {
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let t = 0; t < T; t++) {
        const from = ((b * H + h) * T + t) * D;
        dst.set(heads.subarray(from, from + D), (b * T + t) * cols + offset + h * D);
      }
}

/** Per head: P = causal softmax(Q·Kᵀ/√D) and O = P·V, both [B, H, T, ·]. The forward's and the backward's, call for call. */
async function attend(k: Kernels, qkv: Float32Array, d: Dims) {
  const { B, T, C, H, D } = d;
  const q = toHeads(qkv, 3 * C, 0, d);
  const kk = toHeads(qkv, 3 * C, C, d);
  const v = toHeads(qkv, 3 * C, 2 * C, d);
  const scores = await k.batchedMatmul(q, kk, B * H, T, D, T, { transB: true });
  const p = await k.softmaxRows(scores, B * H * T, T, { scale: 1 / Math.sqrt(D), causalT: T });
  const o = await k.batchedMatmul(p, v, B * H, T, T, D);
  return { q, k: kk, v, p, o };
}

/** Q|K|V = x·[Wq | Wk | Wv] + [bq | bk | bv], (B·T)×3C. */
async function projectQkv(k: Kernels, x: Float32Array, Wqkv: Float32Array, bqkv: Float32Array, { B, T, C }: Dims): Promise<Float32Array> {
  return k.addBias(await k.matmul(x, Wqkv, B * T, C, 3 * C), bqkv, B * T, 3 * C);
}

function dimsOf(x: Tensor, inFeatures: number, heads: number): Dims {
  if (x.shape.length !== 3 || x.shape[2] !== inFeatures) {
    throw new Error(`layer.attention: input must be [batch, time, ${inFeatures}], got [${x.shape}]`);
  }
  checkWidth(inFeatures, heads);
  const [B, T, C] = x.shape;
  return { B, T, C, H: heads, D: C / heads };
}

export const attention = defineVNodeType<AttentionConfig>({
  type: 'layer.attention',
  version: 1,
  role: 'layer',
  description: 'causal multi-head self-attention over [batch, time, channels] (Q, K, V and output projections)',
  config: AttentionConfig,
  parameters: [...WEIGHTS, ...BIASES],
  // Every weight [C, C] stored in×out (y = x·W), every bias [C].
  parameterShapes: ({ inFeatures: C }) => Object.fromEntries([...WEIGHTS.map((w) => [w, [C, C]]), ...BIASES.map((b) => [b, [C]])]),
  outFeatures(config, inFeatures) {
    checkWidth(inFeatures, config.heads); // refused when the model is built, not at the first batch
    return inFeatures;
  },
  // 4C² + 4C parameters with slots, twice while an update replaces them; per forward in
  // flight, x and Q|K|V of `batch` positions (rows of C) and the 4C² weights it used.
  stateBytes({ config, inFeatures: C, batch, depth }) {
    const withSlots = (4 * C * C + 4 * C) * (1 + slotNames(config.optimizer, 'Wq').length);
    return 4 * (2 * withSlots + depth * (4 * batch * C + 4 * C * C));
  },

  init({ config, inFeatures: C, rng }) {
    checkWidth(C, config.heads);
    const std = Math.sqrt(1 / C);
    const t: Tensors = {};
    for (const name of WEIGHTS) {
      const W = new Float32Array(C * C);
      for (let i = 0; i < W.length; i++) W[i] = rng.normal() * std;
      t[name] = W;
    }
    for (const name of BIASES) t[name] = new Float32Array(C);
    for (const name of [...WEIGHTS, ...BIASES]) Object.assign(t, initSlots(config.optimizer, name, t[name].length));
    return t;
  },

  async forward({ k, config, inFeatures, staleness }, tensors, x) {
    const d = dimsOf(x, inFeatures, config.heads);
    const { B, T, C } = d;
    const p: Tensors = {};
    for (const name of [...WEIGHTS, ...BIASES]) p[name] = await predictParameter(k, config.optimizer, tensors, name, staleness ?? 0);
    const Wqkv = stackColumns([p.Wq, p.Wk, p.Wv], C, C);
    const bqkv = stackColumns([p.bq, p.bk, p.bv], 1, C);
    const qkv = await projectQkv(k, x.data, Wqkv, bqkv, d);
    const { o } = await attend(k, qkv, d);
    const merged = new Float32Array(B * T * C);
    fromHeads(o, merged, C, 0, d);
    const y = await k.addBias(await k.matmul(merged, p.Wo, B * T, C, C), p.bo, B * T, C);
    return { y: { shape: [B, T, C], data: y }, stash: [x.data, qkv, Wqkv, p.Wo] };
  },

  async backward({ k, config, inFeatures, step, needDx }, tensors, dy, [x, qkv, Wqkv, Wo]) {
    const d = dimsOf(dy, inFeatures, config.heads);
    const { B, T, C, H, D } = d;
    const rows = B * T;
    const a = await attend(k, qkv, d);
    const merged = new Float32Array(rows * C);
    fromHeads(a.o, merged, C, 0, d);
    // output projection
    const dWo = await k.matmul(merged, dy.data, C, rows, C, { transA: true });
    const dbo = await k.sumRows(dy.data, rows, C);
    const dO = toHeads(await k.matmul(dy.data, Wo, rows, C, C, { transB: true }), C, 0, d);
    // per head: O = P·V, P = softmax(scale·Q·Kᵀ)
    const dP = await k.batchedMatmul(dO, a.v, B * H, T, D, T, { transB: true });
    const dV = await k.batchedMatmul(a.p, dO, B * H, T, T, D, { transA: true });
    const dS = await k.softmaxRowsGrad(a.p, dP, B * H * T, T, { scale: 1 / Math.sqrt(D) });
    const dQ = await k.batchedMatmul(dS, a.k, B * H, T, T, D);
    const dK = await k.batchedMatmul(dS, a.q, B * H, T, T, D, { transA: true });
    const dQkv = new Float32Array(rows * 3 * C);
    fromHeads(dQ, dQkv, 3 * C, 0, d);
    fromHeads(dK, dQkv, 3 * C, C, d);
    fromHeads(dV, dQkv, 3 * C, 2 * C, d);
    // input projections: one product for the three weights, one for dx
    const [dWq, dWk, dWv] = splitColumns(await k.matmul(x, dQkv, C, rows, 3 * C, { transA: true }), C, C, 3);
    const [dbq, dbk, dbv] = splitColumns(await k.sumRows(dQkv, rows, 3 * C), 1, C, 3);
    const dx = needDx ? await k.matmul(dQkv, Wqkv, rows, 3 * C, C, { transB: true }) : undefined;
    const grads: Tensors = { Wq: dWq, Wk: dWk, Wv: dWv, Wo: dWo, bq: dbq, bk: dbk, bv: dbv, bo: dbo };
    const updated: Tensors = {};
    for (const name of [...WEIGHTS, ...BIASES]) Object.assign(updated, await applyUpdate(k, config.optimizer, tensors, name, grads[name], step));
    return { dx: dx && { shape: [B, T, C], data: dx }, tensors: updated };
  },
});

/** Plain-JS float64 reference of the forward pass, for tests (the textbook loops, no kernels). */
export const reference = {
  forward(x: ArrayLike<number>, t: Record<string, ArrayLike<number>>, B: number, T: number, C: number, H: number): Float64Array {
    const D = C / H;
    const proj = (src: ArrayLike<number>, W: ArrayLike<number>, b: ArrayLike<number>) => {
      const out = new Float64Array(B * T * C);
      for (let r = 0; r < B * T; r++)
        for (let j = 0; j < C; j++) {
          let s = b[j];
          for (let i = 0; i < C; i++) s += src[r * C + i] * W[i * C + j];
          out[r * C + j] = s;
        }
      return out;
    };
    const q = proj(x, t.Wq, t.bq);
    const kk = proj(x, t.Wk, t.bk);
    const v = proj(x, t.Wv, t.bv);
    const o = new Float64Array(B * T * C);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++)
        for (let i = 0; i < T; i++) {
          // scores of query i against keys 0..i (causal), softmax, weighted sum of values
          const s: number[] = [];
          for (let j = 0; j <= i; j++) {
            let dot = 0;
            for (let e = 0; e < D; e++) dot += q[(b * T + i) * C + h * D + e] * kk[(b * T + j) * C + h * D + e];
            s.push(dot / Math.sqrt(D));
          }
          const max = Math.max(...s);
          const w = s.map((z) => Math.exp(z - max));
          const sum = w.reduce((a, z) => a + z, 0);
          for (let e = 0; e < D; e++) {
            let acc = 0;
            for (let j = 0; j <= i; j++) acc += (w[j] / sum) * v[(b * T + j) * C + h * D + e];
            o[(b * T + i) * C + h * D + e] = acc;
          }
        }
    return proj(o, t.Wo, t.bo);
  },
};
