/**
 * `loss.softmaxCrossEntropy`: softmax over the last axis of the logits, cross-entropy
 * against the targets, mean over every position (every row of a [batch, classes] input,
 * every token of a [batch, time, classes] one).
 *
 * Two kinds of target, told apart by shape:
 * - the logits' own shape: one-hot (or soft) target rows, as the classifiers send;
 * - the logits' shape without its last axis ([batch] or [batch, time]): class ids,
 *   float32 integers in [0, classes), as a language model's next tokens. A tenth of the
 *   bytes on the wire for a 10-class batch, a vocab-th for a language model, and the same
 *   loss and gradient bits as the matching one-hot target (Kernels.softmaxCrossEntropyIds).
 */
import { z } from 'zod';
import type { Tensor } from '../../runtime/tensor.js';
import { defineVNodeType } from '../../runtime/vnode-type.js';

/** True for class-id targets: the logits' shape without the last axis. */
function isIdTarget(x: Tensor, target: Tensor): boolean {
  return target.shape.length === x.shape.length - 1 && target.shape.every((d, i) => d === x.shape[i]);
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

export const softmaxCrossEntropy = defineVNodeType({
  type: 'loss.softmaxCrossEntropy',
  version: 1,
  role: 'loss',
  description: 'softmax + cross-entropy over the last axis, one-hot or class-id targets, mean over positions',
  config: z.object({}).strict(),
  async loss({ k, inFeatures }, x, target) {
    // Every leading index is a position; for [rows, classes] that is rows, as ever.
    const positions = x.data.length / inFeatures;
    if (isIdTarget(x, target)) {
      // the kernel refuses an id that is not an integer in [0, inFeatures), naming it
      const { loss, grad } = await k.softmaxCrossEntropyIds(x.data, target.data, positions, inFeatures);
      return { loss, dx: { shape: x.shape, data: grad } };
    }
    if (!sameShape(x.shape, target.shape)) {
      throw new Error(
        `loss.softmaxCrossEntropy: target shape [${target.shape}] is neither the logits' [${x.shape}] (one-hot) nor [${x.shape.slice(0, -1)}] (class ids)`,
      );
    }
    const { loss, grad } = await k.softmaxCrossEntropy(x.data, target.data, positions, inFeatures);
    return { loss, dx: { shape: x.shape, data: grad } };
  },
  async predict({ inFeatures }, x) {
    return { shape: x.shape, data: reference.softmax(x.data, x.data.length / inFeatures, inFeatures) };
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
