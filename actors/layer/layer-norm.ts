/**
 * `layer.layerNorm`: layer normalization over the last axis,
 * y = (x − mean)/√(var + eps)·gamma + beta per row, for any rank ≥ 2 (rows = the product
 * of the leading dims: a transformer's [batch, time, channels] normalizes each token).
 * gamma starts at 1 and beta at 0 (the identity up to normalization), trained by the
 * layer's own optimizer like layer.dense.
 *
 * Staleness: as layer.dense (weight prediction for the forward, weight stashing for
 * dx: the gamma the forward used is stashed with x and the row statistics, so the
 * gradient sent upstream is that of the forward that made the activations).
 */
import { z } from 'zod';
import { applyUpdate, DEFAULT_OPTIMIZER, initSlots, OptimizerConfig, predictParameter, slotNames } from '../../runtime/optim.js';
import { defineVNodeType } from '../../runtime/vnode-type.js';

const LayerNormConfig = z.object({
  /** Added to the variance before the square root. @default 1e-5 (PyTorch's) */
  eps: z.number().positive().max(1).default(1e-5),
  optimizer: OptimizerConfig.default(DEFAULT_OPTIMIZER),
});
type LayerNormConfig = z.infer<typeof LayerNormConfig>;

export const layerNorm = defineVNodeType<LayerNormConfig>({
  type: 'layer.layerNorm',
  version: 1,
  role: 'layer',
  description: 'layer normalization over the last axis, with a learned scale (gamma) and shift (beta)',
  config: LayerNormConfig,
  parameters: ['gamma', 'beta'],
  parameterShapes: ({ inFeatures }) => ({ gamma: [inFeatures], beta: [inFeatures] }),
  // gamma and beta with slots, twice while an update replaces them; per forward in
  // flight, the stashed x (`batch` rows), its mean and rstd, and the gamma it used.
  stateBytes({ config, inFeatures, batch, depth }) {
    const withSlots = 2 * inFeatures * (1 + slotNames(config.optimizer, 'gamma').length);
    return 4 * (2 * withSlots + depth * (batch * inFeatures + 2 * batch + inFeatures));
  },

  init({ config, inFeatures }) {
    return {
      gamma: new Float32Array(inFeatures).fill(1),
      beta: new Float32Array(inFeatures),
      ...initSlots(config.optimizer, 'gamma', inFeatures),
      ...initSlots(config.optimizer, 'beta', inFeatures),
    };
  },

  async forward({ k, config, inFeatures, staleness }, tensors, x) {
    const gamma = await predictParameter(k, config.optimizer, tensors, 'gamma', staleness ?? 0);
    const beta = await predictParameter(k, config.optimizer, tensors, 'beta', staleness ?? 0);
    const rows = x.data.length / inFeatures;
    const { y, mean, rstd } = await k.layerNorm(x.data, gamma, beta, rows, inFeatures, config.eps);
    return { y: { shape: x.shape, data: y }, stash: [x.data, mean, rstd, gamma] };
  },

  async backward({ k, config, inFeatures, step, needDx }, tensors, dy, [x, mean, rstd, forwardGamma]) {
    const rows = dy.data.length / inFeatures;
    // dgamma and dbeta need the row statistics anyway, so dx comes with them even when
    // not needed (a first VNode): one kernel call either way.
    const g = await k.layerNormGrad(x, forwardGamma, dy.data, mean, rstd, rows, inFeatures);
    return {
      dx: needDx ? { shape: dy.shape, data: g.dx } : undefined,
      tensors: {
        ...(await applyUpdate(k, config.optimizer, tensors, 'gamma', g.dgamma, step)),
        ...(await applyUpdate(k, config.optimizer, tensors, 'beta', g.dbeta, step)),
      },
    };
  },
});

/** Plain-JS float64 reference of the forward pass, for tests. */
export const reference = {
  forward(x: ArrayLike<number>, gamma: ArrayLike<number>, beta: ArrayLike<number>, rows: number, cols: number, eps = 1e-5): Float64Array {
    const y = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      let mean = 0;
      for (let c = 0; c < cols; c++) mean += x[r * cols + c] / cols;
      let variance = 0;
      for (let c = 0; c < cols; c++) variance += (x[r * cols + c] - mean) ** 2 / cols;
      for (let c = 0; c < cols; c++) y[r * cols + c] = ((x[r * cols + c] - mean) / Math.sqrt(variance + eps)) * gamma[c] + beta[c];
    }
    return y;
  },
};
