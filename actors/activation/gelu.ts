/**
 * `activation.gelu`: the tanh-approximated GELU, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))),
 * elementwise: GPT-2's activation (PyTorch `gelu(approximate='tanh')`), so weights
 * trained elsewhere with it carry over. No parameters; stashes its input for backward.
 * Any rank: elementwise ops do not care about the shape.
 */
import { z } from 'zod';
import { defineVNodeType } from '../../runtime/vnode-type.js';

export const gelu = defineVNodeType({
  type: 'activation.gelu',
  version: 1,
  role: 'activation',
  description: 'GELU (tanh approximation, as GPT-2), elementwise',
  config: z.object({}).strict(),
  async forward({ k }, _tensors, x) {
    return { y: { shape: x.shape, data: await k.activation('gelu', x.data) }, stash: [x.data] };
  },
  async backward({ k, needDx }, _tensors, dy, [x]) {
    return needDx ? { dx: { shape: dy.shape, data: await k.activationGrad('gelu', x, dy.data) } } : {};
  },
});

/** Plain-JS float64 reference, for tests. */
export const reference = {
  forward: (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
};
