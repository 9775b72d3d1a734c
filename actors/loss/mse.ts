/**
 * `loss.mse`: mean squared error against the target; predictions are the input itself.
 */
import { z } from 'zod';
import { defineVNodeType } from '../../runtime/vnode-type.js';

export const mse = defineVNodeType({
  type: 'loss.mse',
  version: 1,
  role: 'loss',
  description: 'mean squared error over all elements',
  config: z.object({}).strict(),
  async loss({ k }, x, target) {
    const { loss, grad } = await k.mse(x.data, target.data);
    return { loss, dx: { shape: x.shape, data: grad } };
  },
  async predict(_ctx, x) {
    return x;
  },
});

/** Plain-JS float64 reference, for tests. */
export const reference = {
  loss(x: Float32Array, t: Float32Array): number {
    let s = 0;
    for (let i = 0; i < x.length; i++) s += (x[i] - t[i]) ** 2;
    return s / x.length;
  },
};
