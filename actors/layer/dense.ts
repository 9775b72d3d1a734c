/**
 * `layer.dense`: y = x·W + b, trained by its own optimizer from the gradient its
 * downstream neighbour sends (gradient locality).
 *
 * W is stored in×out (row-major), b is out. It acts on the last axis: an input of any
 * rank ≥ 2 is a matrix of (product of the leading dims) rows, and the output keeps the
 * leading dims ([batch, time, in] → [batch, time, units]). For a rank-2 input that is
 * the plain [rows, in] product, with the same kernel calls as ever (the same bits).
 *
 * Staleness at pipeline depth d (docs/checkpoints.md#staleness): the update of seq s
 * lands `ctx.staleness` updates after its forward ran. Two deterministic measures:
 * - weight prediction (as in SpecTrain): the forward runs with W extrapolated that many
 *   optimizer steps ahead along the optimizer's own direction (`predictParameter`), so
 *   the gradient is taken near the weights it will be applied to;
 * - weight stashing (as in PipeDream): the backward computes dx with the W its forward
 *   used, so the gradient sent upstream is that of the forward that made the
 *   activations. A reference, not a copy: tensors are immutable.
 * At depth 0 the staleness is 0 and both are the identity: the math is the plain one.
 */
import { z } from 'zod';
import { applyUpdate, DEFAULT_OPTIMIZER, initSlots, OptimizerConfig, predictParameter, slotNames } from '../../runtime/optim.js';
import { defineVNodeType } from '../../runtime/vnode-type.js';

const DenseConfig = z.object({
  /** Output features. */
  units: z.number().int().positive().max(1 << 16),
  /** Weight init: He (for ReLU) or Xavier/Glorot (for tanh/sigmoid/logits). @default 'he' */
  init: z.enum(['he', 'xavier']).default('he'),
  optimizer: OptimizerConfig.default(DEFAULT_OPTIMIZER),
});
type DenseConfig = z.infer<typeof DenseConfig>;

export const dense = defineVNodeType<DenseConfig>({
  type: 'layer.dense',
  version: 1,
  role: 'layer',
  description: 'fully connected layer y = x·W + b with SGD-momentum or Adam',
  config: DenseConfig,
  parameters: ['W', 'b'],
  // y = x·W + b: W is [in, out] (JAX/Flax's kernel layout; PyTorch's Linear.weight is its transpose).
  parameterShapes: ({ inFeatures, outFeatures }) => ({ W: [inFeatures, outFeatures], b: [outFeatures] }),
  outFeatures: (config) => config.units,
  // W and b with their optimizer slots; a stashed x per forward in flight, and (weight
  // stashing) the W it saw — an older version once an update landed meanwhile; and one
  // update's new W, b and slots while it replaces the old (updates make new arrays).
  stateBytes({ config, inFeatures, outFeatures, batch, depth }) {
    const params = inFeatures * outFeatures + outFeatures;
    const withSlots = params * (1 + slotNames(config.optimizer, 'W').length);
    return 4 * (2 * withSlots + depth * (batch * inFeatures + inFeatures * outFeatures));
  },

  init({ config, inFeatures, outFeatures, rng }) {
    const std = config.init === 'he' ? Math.sqrt(2 / inFeatures) : Math.sqrt(2 / (inFeatures + outFeatures));
    const W = new Float32Array(inFeatures * outFeatures);
    for (let i = 0; i < W.length; i++) W[i] = rng.normal() * std;
    const b = new Float32Array(outFeatures);
    return {
      W,
      b,
      ...initSlots(config.optimizer, 'W', W.length),
      ...initSlots(config.optimizer, 'b', b.length),
    };
  },

  async forward({ k, config, inFeatures, outFeatures, staleness }, tensors, x) {
    const W = await predictParameter(k, config.optimizer, tensors, 'W', staleness ?? 0);
    const b = await predictParameter(k, config.optimizer, tensors, 'b', staleness ?? 0);
    // Over the last axis: every leading index is a row ([batch, time, C] → batch·time rows).
    const rows = x.data.length / inFeatures;
    const xw = await k.matmul(x.data, W, rows, inFeatures, outFeatures);
    const y = await k.addBias(xw, b, rows, outFeatures);
    return { y: { shape: [...x.shape.slice(0, -1), outFeatures], data: y }, stash: [x.data, W] };
  },

  async backward({ k, config, inFeatures, outFeatures, step, needDx }, tensors, dy, [x, forwardW]) {
    const rows = dy.data.length / outFeatures;
    const dW = await k.matmul(x, dy.data, inFeatures, rows, outFeatures, { transA: true });
    const db = await k.sumRows(dy.data, rows, outFeatures);
    // dx uses the weights the forward of this seq used (weight stashing; see above).
    // (A stash from before weight stashing holds only x: then the current W.)
    const dx = needDx ? await k.matmul(dy.data, forwardW ?? tensors.W, rows, outFeatures, inFeatures, { transB: true }) : undefined;
    return {
      dx: dx && { shape: [...dy.shape.slice(0, -1), inFeatures], data: dx },
      tensors: {
        ...(await applyUpdate(k, config.optimizer, tensors, 'W', dW, step)),
        ...(await applyUpdate(k, config.optimizer, tensors, 'b', db, step)),
      },
    };
  },
});

/** Plain-JS float64 reference of the forward pass, for tests. */
export const reference = {
  forward(x: Float32Array, W: Float32Array, b: Float32Array, rows: number, inF: number, outF: number): Float64Array {
    const y = new Float64Array(rows * outF);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < outF; c++) {
        let s = b[c];
        for (let i = 0; i < inF; i++) s += x[r * inF + i] * W[i * outF + c];
        y[r * outF + c] = s;
      }
    }
    return y;
  },
};
