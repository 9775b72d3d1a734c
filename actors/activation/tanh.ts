/**
 * `activation.tanh`: hyperbolic tangent, elementwise. No parameters; stashes its input for backward.
 */
import { z } from 'zod';
import { defineVNodeType } from '../../runtime/vnode-type.js';

export const tanh = defineVNodeType({
  type: 'activation.tanh',
  version: 1,
  role: 'activation',
  description: 'hyperbolic tangent, elementwise',
  config: z.object({}).strict(),
  async forward({ k }, _tensors, x) {
    return { y: { shape: x.shape, data: await k.activation('tanh', x.data) }, stash: [x.data] };
  },
  async backward({ k, needDx }, _tensors, dy, [x]) {
    return needDx ? { dx: { shape: dy.shape, data: await k.activationGrad('tanh', x, dy.data) } } : {};
  },
});

/** Plain-JS reference, for tests. */
export const reference = { forward: (v: number) => Math.tanh(v) };
