/**
 * What the trainer feeds and scores, per dataset of the model spec (docs/datasets.md):
 * step `seq`'s batch (a pure function of the run's seed and seq, so a feed can be made
 * again with the same bytes), the held-out split, and how the model's predictions on it
 * are scored — `evalLoss` for every model, `testAccuracy` for classifiers.
 */
import { loadMnist, trainingBatch } from '../runtime/data/mnist.js';
import { loadTextDataset, textEvalBatches, textTrainingBatch, type TextDataset } from '../runtime/data/text.js';
import { contextOf, isTextDataset, type ResolvedModel } from '../runtime/model.js';
import type { Tensor } from '../runtime/tensor.js';
import { accuracy } from './evaluate.js';

export interface TrainingData {
  /** The spec's `dataset`. */
  name: string;
  /** Step `seq`'s feeds: the first VNode's input and the loss's target. */
  batch(seed: number, seq: number, batch: number): { x: Tensor; t: Tensor };
  /** The held-out split's inputs: `rows` rows of the model's input features. */
  held: { x: Float32Array; rows: number };
  /** Scores the loss's predictions (probabilities) on the held-out split, in its row order. */
  score(probabilities: Float32Array): { evalLoss: number; testAccuracy?: number };
  /** The text dataset (vocabulary, examples), for a language model. */
  text?: TextDataset;
}

/** −ln p, with p floored so a zero probability gives a large finite loss. */
const nll = (p: number) => -Math.log(Math.max(p, 1e-30));

/** Load the model's dataset; a text dataset whose vocabulary the model does not fit is refused before anything is deployed. */
export function loadTrainingData(model: ResolvedModel): TrainingData {
  const spec = model.spec;
  if (!isTextDataset(spec)) {
    const data = loadMnist();
    const classes = data.classes;
    return {
      name: spec.dataset,
      batch: (seed, seq, batch) => {
        const { x, t } = trainingBatch(data, seed, seq, batch);
        return { x: { shape: [batch, data.features], data: x }, t: { shape: [batch, classes], data: t } };
      },
      held: { x: data.test.x, rows: data.test.n },
      score(p) {
        let loss = 0;
        for (let r = 0; r < data.test.n; r++) loss += nll(p[r * classes + data.test.y[r]]);
        return { evalLoss: loss / data.test.n, testAccuracy: accuracy(p, data.test.y, classes) };
      },
    };
  }
  const text = loadTextDataset(spec.dataset);
  const T = contextOf(spec);
  const V = text.vocab.length;
  if (model.outputFeatures !== V) {
    throw new Error(`the model predicts ${model.outputFeatures} tokens per position, but ${spec.dataset} has a vocabulary of ${V} (set the last layer's units and the embedding's vocab to ${V})`);
  }
  const held = textEvalBatches(text, T);
  return {
    name: spec.dataset,
    batch: (seed, seq, batch) => {
      const { x, t } = textTrainingBatch(text, seed, seq, batch, T);
      return { x: { shape: [batch, T], data: x }, t: { shape: [batch, T], data: t } };
    },
    held: { x: held.x, rows: held.n },
    score(p) {
      let loss = 0;
      for (let i = 0; i < held.t.length; i++) loss += nll(p[i * V + held.t[i]]);
      return { evalLoss: loss / held.t.length };
    },
    text,
  };
}
