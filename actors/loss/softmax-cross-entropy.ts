/**
 * `loss.softmaxCrossEntropy`: softmax over each row of logits, cross-entropy against
 * one-hot (or soft) targets, mean over the batch.
 */
import { z } from 'zod';
import { defineVNodeType } from '../../runtime/vnode-type.js';

export const softmaxCrossEntropy = defineVNodeType({
  type: 'loss.softmaxCrossEntropy',
  version: 1,
  role: 'loss',
  description: 'softmax + cross-entropy over rows, mean over the batch',
  config: z.object({}).strict(),
  async loss({ k, inFeatures }, x, target) {
    const rows = x.shape[0];
    const { loss, grad } = await k.softmaxCrossEntropy(x.data, target.data, rows, inFeatures);
    return { loss, dx: { shape: x.shape, data: grad } };
  },
  async predict({ inFeatures }, x) {
    return { shape: x.shape, data: reference.softmax(x.data, x.shape[0], inFeatures) };
  },
});

/** Plain-JS reference, for tests (and for `predict`, which is not on the training path). */
export const reference = {
  softmax(x: Float32Array, rows: number, cols: number): Float32Array {
    const out = new Float32Array(x.length);
    for (let r = 0; r < rows; r++) {
      let max = -Infinity;
      for (let c = 0; c < cols; c++) max = Math.max(max, x[r * cols + c]);
      let sum = 0;
      for (let c = 0; c < cols; c++) sum += Math.exp(x[r * cols + c] - max);
      for (let c = 0; c < cols; c++) out[r * cols + c] = Math.exp(x[r * cols + c] - max) / sum;
    }
    return out;
  },
  loss(x: Float32Array, t: Float32Array, rows: number, cols: number): number {
    const p = reference.softmax(x, rows, cols);
    let s = 0;
    for (let i = 0; i < x.length; i++) if (t[i] > 0) s -= t[i] * Math.log(Math.max(p[i], 1e-30));
    return s / rows;
  },
};
