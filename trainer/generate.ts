/**
 * Sampling from a trained language model (`dcnr generate`): each sample starts at the
 * boundary token and draws one token at a time from the model's next-token
 * probabilities over the last `context` tokens, until the boundary comes again (an
 * example ends) or `maxTokens`. Temperature T reweights p to p^(1/T); T = 0 takes the
 * most likely token. Draws come from a seeded RNG per sample: the same parameters,
 * seed and temperature give the same samples.
 */
import type { Kernels } from '../runtime/kernels/types.js';
import { BOUNDARY_ID, decode, isInTrainingSet, type TextDataset } from '../runtime/data/text.js';
import { contextOf, type ResolvedModel } from '../runtime/model.js';
import { createRng } from '../runtime/rng.js';
import type { Tensors } from '../runtime/vnode-type.js';
import { forwardGraph } from './evaluate.js';

export interface GenerateOptions {
  count: number;
  temperature: number;
  seed: number;
  /** Tokens per sample at most. @default twice the longest example */
  maxTokens?: number;
}

export interface Sample {
  text: string;
  /** The sample is one of the training examples (it was memorised, not made up). */
  inTrainingSet: boolean;
}

/** Index drawn from probabilities `p` (not necessarily summing to 1) at temperature `t`, with `u` uniform in [0, 1). */
export function draw(p: Float32Array, t: number, u: number): number {
  if (t === 0) return p.indexOf(Math.max(...p));
  const w = Array.from(p, (pi) => (pi > 0 ? Math.exp(Math.log(pi) / t) : 0));
  const total = w.reduce((a, b) => a + b, 0);
  let at = u * total;
  for (let i = 0; i < w.length; i++) {
    at -= w[i];
    if (at < 0) return i;
  }
  return w.length - 1;
}

export async function generate(k: Kernels, model: ResolvedModel, tensors: Tensors[], data: TextDataset, o: GenerateOptions): Promise<Sample[]> {
  const T = contextOf(model.spec);
  const V = data.vocab.length;
  const maxTokens = o.maxTokens ?? 2 * data.maxLength;
  const samples: Sample[] = [];
  for (let i = 0; i < o.count; i++) {
    const rng = createRng(`${o.seed}/generate/${i}`);
    const ids = [BOUNDARY_ID];
    for (let n = 0; n < maxTokens; n++) {
      const window = ids.slice(-T);
      const probs = await forwardGraph(k, model, tensors, { shape: [1, window.length], data: Float32Array.from(window) });
      const last = probs.data.subarray((window.length - 1) * V, window.length * V);
      const next = draw(last, o.temperature, rng.next());
      if (next === BOUNDARY_ID) break;
      ids.push(next);
    }
    const text = decode(data, ids.slice(1));
    samples.push({ text, inTrainingSet: isInTrainingSet(data, text) });
  }
  return samples;
}
