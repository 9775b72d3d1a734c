/**
 * `merge.add`: y = x₀ + x₁ + … (inputs of one shape, summed left to right in float32),
 * the fan-in of a graph: a residual connection is `merge.add` of a block's input and
 * its output. No parameters, nothing stashed; the gradient of each input is dy itself
 * (the same array, as tensors are never modified).
 *
 * The sum is plain typed-array code, not a kernel: one pass over memory, cheaper than
 * any kernel launch, and the same bits on every backend.
 */
import { z } from 'zod';
import { defineVNodeType } from '../../runtime/vnode-type.js';

/** x₀ + x₁ + …, left to right, each partial sum rounded to float32. */
function sum(xs: Float32Array[]): Float32Array {
  const out = Float32Array.from(xs[0]);
  for (let j = 1; j < xs.length; j++) {
    const x = xs[j];
    for (let i = 0; i < out.length; i++) out[i] += x[i];
  }
  return out;
}

export const add = defineVNodeType({
  type: 'merge.add',
  version: 1,
  role: 'merge',
  description: 'sum of its inputs (of one shape): residual connections',
  config: z.object({}).strict(),
  stateBytes: () => 0,
  async forward(_ctx, _tensors, xs) {
    return { y: { shape: xs[0].shape, data: sum(xs.map((x) => x.data)) } };
  },
  async backward({ needDx }, _tensors, dy) {
    return { dxs: needDx.map((need) => (need ? dy : undefined)) };
  },
});

/** Plain-JS float64 reference, for tests. */
export const reference = {
  forward: (xs: Float32Array[]): Float64Array => {
    const out = new Float64Array(xs[0].length);
    for (const x of xs) for (let i = 0; i < out.length; i++) out[i] += x[i];
    return out;
  },
};
