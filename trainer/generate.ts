/**
 * Sampling from a trained language model (`dcnr generate`, and `POST /v1/generate` of
 * `dcnr serve`): each sample starts at the boundary token, then the prompt's tokens if
 * any, and draws one token at a time from the model's next-token probabilities over the
 * last `context` tokens, until the boundary comes again (an example ends) or
 * `maxTokens` new tokens. Temperature T reweights p to p^(1/T); T = 0 takes the most
 * likely token. Draws come from a seeded RNG per sample (key `${seed}/generate/${i}`):
 * the same parameters, prompt, seed and temperature give the same samples.
 *
 * The token loop (`sample`) takes the forward pass as a function, so the CLI (parameters
 * in this process) and the server (any backend, batched or not) run the same loop.
 */
import type { Kernels } from '../runtime/kernels/types.js';
import { BOUNDARY_ID, decode, encode, isInTrainingSet, type TextDataset } from '../runtime/data/text.js';
import { contextOf, type ResolvedModel } from '../runtime/model.js';
import { createRng } from '../runtime/rng.js';
import type { Tensor } from '../runtime/tensor.js';
import type { Tensors } from '../runtime/vnode-type.js';
import { forwardGraph } from './evaluate.js';

/** The model's output (next-token probabilities at every position) for a [1, window] input of token ids. */
export type Forward = (input: Tensor) => Promise<Tensor>;

export interface GenerateOptions {
  count: number;
  temperature: number;
  seed: number;
  /** New tokens per sample at most (the prompt not counted). @default twice the longest example */
  maxTokens?: number;
  /** Text every sample starts with (its characters in the vocabulary, not the boundary). @default '' */
  prompt?: string;
}

export interface Sample {
  /** The prompt and what the model wrote after it, without the boundaries. */
  text: string;
  /** The sample is one of the training examples (it was memorised, not made up). */
  inTrainingSet: boolean;
}

/** What one sample needs besides the forward pass. */
export interface SampleOptions {
  /** Tokens per window: the model's `context`. */
  context: number;
  /** Vocabulary size: entries per position of the forward's output. */
  vocab: number;
  temperature: number;
  seed: number;
  /** Which sample of the seed this is: its draws come from the RNG `${seed}/generate/${index}`. */
  index: number;
  /** New tokens at most. */
  maxTokens: number;
  /** Token ids after the leading boundary (none may be the boundary). @default [] */
  prompt?: readonly number[];
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

/**
 * One sample's token ids after the leading boundary (the prompt's first): the token
 * loop, one `forward` per new token on the last `context` ids.
 * @example
 * const ids = await sample((x) => forwardGraph(k, model, tensors, x), { context: 16, vocab: 27, temperature: 1, seed: 7, index: 0, maxTokens: 30 });
 */
export async function sample(forward: Forward, o: SampleOptions): Promise<number[]> {
  const rng = createRng(`${o.seed}/generate/${o.index}`);
  const ids = [BOUNDARY_ID, ...(o.prompt ?? [])];
  for (let n = 0; n < o.maxTokens; n++) {
    const window = ids.slice(-o.context);
    const probs = await forward({ shape: [1, window.length], data: Float32Array.from(window) });
    const last = probs.data.subarray((window.length - 1) * o.vocab, window.length * o.vocab);
    const next = draw(last, o.temperature, rng.next());
    if (next === BOUNDARY_ID) break;
    ids.push(next);
  }
  return ids.slice(1);
}

/**
 * The token ids of a prompt: its characters in `data`'s vocabulary; the boundary
 * character (it would end the example) and anything outside the vocabulary are errors
 * that name the character.
 */
export function encodePrompt(data: TextDataset, prompt: string): number[] {
  const ids = encode(data, prompt);
  const at = ids.indexOf(BOUNDARY_ID);
  if (at >= 0) throw new Error(`${data.name}: the prompt's character ${at} is the boundary ${JSON.stringify(data.vocab[BOUNDARY_ID])}, which ends an example`);
  return ids;
}

export async function generate(k: Kernels, model: ResolvedModel, tensors: Tensors[], data: TextDataset, o: GenerateOptions): Promise<Sample[]> {
  const forward: Forward = (x) => forwardGraph(k, model, tensors, x);
  const prompt = encodePrompt(data, o.prompt ?? '');
  const samples: Sample[] = [];
  for (let i = 0; i < o.count; i++) {
    const ids = await sample(forward, {
      context: contextOf(model.spec),
      vocab: data.vocab.length,
      temperature: o.temperature,
      seed: o.seed,
      index: i,
      maxTokens: o.maxTokens ?? 2 * data.maxLength,
      prompt,
    });
    const text = decode(data, ids);
    samples.push({ text, inTrainingSet: isInTrainingSet(data, text) });
  }
  return samples;
}
