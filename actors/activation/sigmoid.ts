/**
 * `activation.sigmoid`: logistic 1/(1+e^-x), elementwise. No parameters; stashes its input for backward.
 */
import { z } from 'zod';
import { defineVNodeType } from '../../runtime/vnode-type.js';

export const sigmoid = defineVNodeType({
  type: 'activation.sigmoid',
  version: 1,
  role: 'activation',
  description: 'logistic 1/(1+e^-x), elementwise',
  config: z.object({}).strict(),
  async forward({ k }, _tensors, x) {
    return { y: { shape: x.shape, data: await k.activation('sigmoid', x.data) }, stash: [x.data] };
  },
  async backward({ k, needDx }, _tensors, dy, [x]) {
    return needDx ? { dx: { shape: dy.shape, data: await k.activationGrad('sigmoid', x, dy.data) } } : {};
  },
});

/** Plain-JS reference, for tests. */
export const reference = { forward: (v: number) => 1 / (1 + Math.exp(-v)) };
