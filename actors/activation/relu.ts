/**
 * `activation.relu`: max(x, 0), elementwise. No parameters; stashes its input for backward.
 */
import { z } from 'zod';
import { defineVNodeType } from '../../runtime/vnode-type.js';

export const relu = defineVNodeType({
  type: 'activation.relu',
  version: 1,
  role: 'activation',
  description: 'max(x, 0), elementwise',
  config: z.object({}).strict(),
  async forward({ k }, _tensors, x) {
    return { y: { shape: x.shape, data: await k.activation('relu', x.data) }, stash: [x.data] };
  },
  async backward({ k, needDx }, _tensors, dy, [x]) {
    return needDx ? { dx: { shape: dy.shape, data: await k.activationGrad('relu', x, dy.data) } } : {};
  },
});

/** Plain-JS reference, for tests. */
export const reference = { forward: (v: number) => Math.max(v, 0) };
