/**
 * `layer.embedding`: token and position embeddings, the first VNode of a language model.
 * Input [batch, time] of token ids (float32 integers in [0, vocab): the wire carries
 * float32 only); output [batch, time, width] = tok[id] + pos[t].
 *
 * Token ids are not differentiable, so this layer sends no gradient upstream: it must be
 * the first VNode (a backward that asks for dx is refused with an error saying so).
 * Its backward sums dy into the rows of tok its ids picked (a scatter-add, in a fixed
 * order) and over the batch into pos, and steps its own optimizer.
 *
 * Staleness: the forward uses tok and pos predicted ahead as layer.dense does; with no
 * dx there is nothing to compute with the forward's weights, so none are stashed (only
 * the ids are).
 */
import { z } from 'zod';
import { applyUpdate, DEFAULT_OPTIMIZER, initSlots, OptimizerConfig, predictParameter, slotNames } from '../../runtime/optim.js';
import type { Tensor } from '../../runtime/tensor.js';
import { defineVNodeType } from '../../runtime/vnode-type.js';

const EmbeddingConfig = z.object({
  /** Number of token ids: valid ids are 0..vocab−1. */
  vocab: z.number().int().positive().max(1 << 20),
  /** Embedding width (the model's channels). */
  width: z.number().int().positive().max(1 << 16),
  /** Longest sequence (rows of the position table); an input of more time steps is refused. */
  context: z.number().int().positive().max(1 << 16),
  optimizer: OptimizerConfig.default(DEFAULT_OPTIMIZER),
});
type EmbeddingConfig = z.infer<typeof EmbeddingConfig>;

/** GPT-2's init of both tables: N(0, 0.02²). */
const INIT_STD = 0.02;

/** [batch, time] of the input, after checking it is a batch of id sequences that fits. */
function checkIds(x: Tensor, config: EmbeddingConfig): [number, number] {
  if (x.shape.length !== 2) throw new Error(`layer.embedding: input must be [batch, time] token ids, got shape [${x.shape}]`);
  const [B, T] = x.shape;
  if (T < 1 || T > config.context) throw new Error(`layer.embedding: ${T} time steps; the context is 1..${config.context}`);
  for (let i = 0; i < x.data.length; i++) {
    const id = x.data[i];
    if (!(Number.isInteger(id) && id >= 0 && id < config.vocab)) {
      throw new Error(`layer.embedding: token id ${id} at [${Math.floor(i / T)}, ${i % T}] is not an integer in [0, ${config.vocab})`);
    }
  }
  return [B, T];
}

export const embedding = defineVNodeType<EmbeddingConfig>({
  type: 'layer.embedding',
  version: 1,
  role: 'layer',
  description: 'token + position embedding of [batch, time] token ids (the first VNode of a language model)',
  config: EmbeddingConfig,
  parameters: ['tok', 'pos'],
  parameterShapes: ({ config }) => ({ tok: [config.vocab, config.width], pos: [config.context, config.width] }),
  outFeatures: (config) => config.width,
  // tok and pos with slots, twice while an update replaces them; per forward in flight,
  // the ids of `batch` sequences of up to `context` tokens.
  stateBytes({ config, batch, depth }) {
    const params = (config.vocab + config.context) * config.width;
    // `batch` counts positions (runtime/model.ts stateBytesOf): one stashed id each.
    return 4 * (2 * params * (1 + slotNames(config.optimizer, 'tok').length) + depth * batch);
  },

  init({ config, rng }) {
    const tok = new Float32Array(config.vocab * config.width);
    for (let i = 0; i < tok.length; i++) tok[i] = rng.normal() * INIT_STD;
    const pos = new Float32Array(config.context * config.width);
    for (let i = 0; i < pos.length; i++) pos[i] = rng.normal() * INIT_STD;
    return { tok, pos, ...initSlots(config.optimizer, 'tok', tok.length), ...initSlots(config.optimizer, 'pos', pos.length) };
  },

  async forward({ k, config, staleness }, tensors, x) {
    const [B, T] = checkIds(x, config);
    const { width } = config;
    const tok = await predictParameter(k, config.optimizer, tensors, 'tok', staleness ?? 0);
    const pos = await predictParameter(k, config.optimizer, tensors, 'pos', staleness ?? 0);
    const rows = await k.gather(tok, x.data, B * T, width);
    // pos[t] added to every sequence: the first T rows of pos as one bias of T·width
    const y = await k.addBias(rows, pos.subarray(0, T * width), B, T * width);
    return { y: { shape: [B, T, width], data: y }, stash: [x.data] };
  },

  async backward({ k, config, step, needDx }, tensors, dy, [ids]) {
    if (needDx) throw new Error('layer.embedding has no input gradient (token ids are not differentiable): it must be the first VNode of a model');
    const { vocab, width, context } = config;
    const B = dy.shape[0];
    const T = ids.length / B;
    const dtok = await k.scatterAdd(ids, dy.data, vocab, width);
    const dposT = await k.sumRows(dy.data, B, T * width);
    // positions the batch did not reach get a zero gradient
    const dpos = new Float32Array(context * width);
    dpos.set(dposT);
    return {
      tensors: {
        ...(await applyUpdate(k, config.optimizer, tensors, 'tok', dtok, step)),
        ...(await applyUpdate(k, config.optimizer, tensors, 'pos', dpos, step)),
      },
    };
  },
});

/** Plain-JS reference of the forward pass, for tests: y[b,t,:] = tok[id] + pos[t], in float64. */
export const reference = {
  forward(ids: ArrayLike<number>, tok: ArrayLike<number>, pos: ArrayLike<number>, B: number, T: number, width: number): Float64Array {
    const y = new Float64Array(B * T * width);
    for (let b = 0; b < B; b++)
      for (let t = 0; t < T; t++)
        for (let c = 0; c < width; c++) y[(b * T + t) * width + c] = tok[ids[b * T + t] * width + c] + pos[t * width + c];
    return y;
  },
};
