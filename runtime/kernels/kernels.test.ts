/**
 * Every kernel backend (the `js` reference too) against independent float64
 * formulas (./float64-oracle.ts), on seeded random data. Not against the `js`
 * backend: it runs the same non-matmul code as OpenBLAS, so that would compare a
 * function with itself.
 *
 * Tolerances (|got − ref| ≤ bound, elementwise):
 * - matmul: 1e-4 × (|op(A)|·|op(B)|)[i,j] + 1e-6 — relative to the sum of the
 *   absolute products, the scale float32 rounding error grows with (a plain
 *   relative bound on C itself would be meaningless where terms cancel).
 * - sumRows: 1e-5 × Σ_r |dy[r,c]| + 1e-6, for the same reason.
 * - elementwise ops, gradients, addBias: 1e-5 × |ref| + 1e-6.
 * - loss scalars: 1e-5 × max(1, |ref|).
 * - batchedMatmul: as matmul, per slice.
 * - softmaxRows: 2e-5 × |ref| + 1e-6 (a float32 sum of up to 129 exps on webasm).
 * - softmaxRowsGrad, layerNorm's dx: 2e-5 × the sum of the absolute terms + 1e-6
 *   (both are differences of nearly equal sums where inputs cancel).
 * - layerNorm y: 2e-5 × (|x̂·γ| + |β|) + 1e-6; mean, rstd: 1e-5 × |ref| + 1e-6.
 * - dgamma, dbeta, scatterAdd: 1e-5 × Σ|terms| + 1e-6, as sumRows.
 * - gather: exact (copies). softmaxCrossEntropyIds: as softmaxCrossEntropy, and the
 *   very bits of softmaxCrossEntropy with the matching one-hot target.
 * The oracle is float64 throughout; webasm accumulates in float32, hence the bounds.
 *
 * Run alone: `node --import tsx runtime/kernels/kernels.test.ts`.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createGpuJsKernels } from './gpujs.js';
import { KERNEL_MODES, createKernels } from './index.js';
import { createReferenceKernels } from './reference.js';
import {
  act64,
  actGrad64,
  addBias64,
  batchedMatmul64,
  bitsEqual,
  layerNorm64,
  layerNormGrad64,
  matmul64,
  mse64,
  scatterAdd64,
  softmaxCrossEntropy64,
  softmaxRows64,
  softmaxRowsGrad64,
  sumRows64,
} from './float64-oracle.js';
import type { ActivationFn, Kernels } from './types.js';
import { adamPredict, adamStep } from './typed-array-ops.js';
import { mulberry32, rand } from '../../test/helpers/random.js';

// ------------------------------------------------------------------ helpers

/** One-hot rows (rows×cols). */
function oneHot(rows: number, cols: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) out[i * cols + Math.floor(r() * cols)] = 1;
  return out;
}

/** Soft target rows that sum to 1. */
function softTargets(rows: number, cols: number, seed: number): Float32Array {
  const out = rand(rows * cols, seed, 1).map(Math.abs);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += out[i * cols + c];
    for (let c = 0; c < cols; c++) out[i * cols + c] /= s;
  }
  return out;
}

/** Asserts |got[i] − ref[i]| ≤ bound(i) everywhere, naming the first offending index. */
function assertClose(got: Float32Array, ref: ArrayLike<number>, bound: (i: number) => number, what: string): void {
  assert.instance(got, Float32Array, `${what}: result is not a Float32Array`);
  assert.is(got.length, ref.length, `${what}: length`);
  for (let i = 0; i < ref.length; i++) {
    const err = Math.abs(got[i] - ref[i]);
    if (!(err <= bound(i))) {
      assert.unreachable(`${what}: index ${i}: got ${got[i]}, reference ${ref[i]}, |err| ${err} > ${bound(i)}`);
    }
  }
}

const rel = (ref: ArrayLike<number>, r: number, a: number) => (i: number) => r * Math.abs(ref[i]) + a;

function assertLossClose(got: number, ref: number, what: string): void {
  assert.ok(Number.isFinite(got), `${what}: loss ${got} is not finite`);
  const bound = 1e-5 * Math.max(1, Math.abs(ref));
  assert.ok(Math.abs(got - ref) <= bound, `${what}: loss ${got} vs reference ${ref} (bound ${bound})`);
}

/** Asserts that `p` rejects with an Error whose message matches `pattern`. */
async function assertRejects(p: Promise<unknown>, pattern: RegExp, what: string): Promise<void> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof Error, `${what}: did not throw`);
  assert.match((err as Error).message, pattern, `${what}: unexpected message`);
}

const ref = createReferenceKernels();

// [m, k, n]: degenerate, odd, non-square, MNIST-layer sized (8192 cells: the threaded webasm path)
const MATMUL_SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [7, 5, 3],
  [3, 7, 5],
  [13, 1, 9],
  [64, 784, 128],
  [64, 128, 10],
];
const TRANS: [boolean, boolean][] = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];
const ACTS: ActivationFn[] = ['relu', 'tanh', 'sigmoid', 'gelu'];
// [batch, m, k, n]: degenerate, odd, attention-like (per-head T×D·D×T), ≥ 4096 cells (threaded webasm)
const BATCHED_SHAPES: [number, number, number, number][] = [
  [1, 1, 1, 1],
  [3, 7, 5, 3],
  [5, 16, 8, 16],
  [12, 32, 16, 32],
];
// [rows, cols, causalT?, scale]
const SOFTMAX_CASES: [number, number, number | undefined, number][] = [
  [1, 1, undefined, 1],
  [7, 5, undefined, 1],
  [33, 129, undefined, 0.37],
  [3, 1, 1, 1],
  [21, 7, 7, 0.5],
  [64, 16, 16, 1 / Math.sqrt(8)],
];
const LAYER_NORM_SHAPES: [number, number][] = [
  [1, 1],
  [7, 5],
  [64, 129],
];

/** Class ids (float32 integers in [0, cols)), one per row. */
function classIds(rows: number, cols: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: rows }, () => Math.floor(r() * cols));
}

/** The one-hot rows of `ids`. */
function oneHotOf(ids: Float32Array, cols: number): Float32Array {
  const out = new Float32Array(ids.length * cols);
  ids.forEach((id, r) => (out[r * cols + id] = 1));
  return out;
}
const ELEMENTWISE_LENGTHS = [1, 7, 1000, 64 * 128];
const LOSS_SHAPES: [number, number][] = [
  [1, 1],
  [7, 3],
  [64, 10],
];

// ------------------------------------------------------------------ the reference itself

test('reference: matmul on a hand-computed case, all transpositions', async () => {
  // A = [[1,2,3],[4,5,6]] (2×3), B = [[1,0],[0,1],[1,1]] (3×2) → C = [[4,5],[10,11]]
  const A = new Float32Array([1, 2, 3, 4, 5, 6]);
  const At = new Float32Array([1, 4, 2, 5, 3, 6]);
  const B = new Float32Array([1, 0, 0, 1, 1, 1]);
  const Bt = new Float32Array([1, 0, 1, 0, 1, 1]);
  const C = [4, 5, 10, 11];
  assert.equal(Array.from(await ref.matmul(A, B, 2, 3, 2)), C);
  assert.equal(Array.from(await ref.matmul(At, B, 2, 3, 2, { transA: true })), C);
  assert.equal(Array.from(await ref.matmul(A, Bt, 2, 3, 2, { transB: true })), C);
  assert.equal(Array.from(await ref.matmul(At, Bt, 2, 3, 2, { transA: true, transB: true })), C);
});

test('reference: elementwise ops and losses on hand-computed cases', async () => {
  const x = new Float32Array([-2, -0, 0, 3]);
  assert.equal(Array.from(await ref.activation('relu', x)), [0, 0, 0, 3]);
  assert.equal(Array.from(await ref.activationGrad('relu', x, new Float32Array([5, 5, 5, 5]))), [0, 0, 0, 5]);
  const s = await ref.activation('sigmoid', new Float32Array([0]));
  assert.is(s[0], 0.5);
  const tg = await ref.activationGrad('tanh', new Float32Array([0]), new Float32Array([2]));
  assert.is(tg[0], 2);
  assert.equal(Array.from(await ref.addBias(new Float32Array([1, 2, 3, 4]), new Float32Array([10, 20]), 2, 2)), [11, 22, 13, 24]);
  assert.equal(Array.from(await ref.sumRows(new Float32Array([1, 2, 3, 4, 5, 6]), 3, 2)), [9, 12]);
  // uniform logits over 4 classes: loss = ln 4, grad = (1/4 − t) / rows
  const ce = await ref.softmaxCrossEntropy(new Float32Array([7, 7, 7, 7]), new Float32Array([0, 1, 0, 0]), 1, 4);
  assert.ok(Math.abs(ce.loss - Math.log(4)) < 1e-6, `ce loss ${ce.loss}`);
  assert.equal(Array.from(ce.grad), [0.25, -0.75, 0.25, 0.25]);
  const m = await ref.mse(new Float32Array([1, 2]), new Float32Array([0, 4]));
  assert.is(m.loss, 2.5); // (1 + 4) / 2
  assert.equal(Array.from(m.grad), [1, -2]); // 2·(p − t)/n
});

test('reference: transformer ops on hand-computed cases', async () => {
  // batched: two 1×2·2×1 products
  assert.equal(Array.from(await ref.batchedMatmul(new Float32Array([1, 2, 3, 4]), new Float32Array([5, 6, 7, 8]), 2, 1, 2, 1)), [17, 53]);
  // equal scores: uniform; causal T=2: row 0 sees column 0 only
  assert.equal(Array.from(await ref.softmaxRows(new Float32Array([3, 3, 3, 3]), 2, 2)), [0.5, 0.5, 0.5, 0.5]);
  assert.equal(Array.from(await ref.softmaxRows(new Float32Array([3, 9, 3, 3]), 2, 2, { causalT: 2 })), [1, 0, 0.5, 0.5]);
  // y = (½, ½), dy = (1, 0): Σ dy·y = ½, dx = y·(dy − ½) = (¼, −¼); scale 2 doubles it
  assert.equal(Array.from(await ref.softmaxRowsGrad(new Float32Array([0.5, 0.5]), new Float32Array([1, 0]), 1, 2, { scale: 2 })), [0.5, -0.5]);
  // x = (1, 3): mean 2, var 1, eps 0 → x̂ = (−1, 1); y = 2x̂ + 1
  const ln = await ref.layerNorm(new Float32Array([1, 3]), new Float32Array([2, 2]), new Float32Array([1, 1]), 1, 2, 0);
  assert.equal([Array.from(ln.y), Array.from(ln.mean), Array.from(ln.rstd)], [[-1, 3], [2], [1]]);
  // dy = (1, 1) on the x̂ above: dβ = (1, 1), dγ = x̂, and dx = 0 (a shift of every x changes nothing)
  const lg = await ref.layerNormGrad(new Float32Array([1, 3]), new Float32Array([2, 2]), new Float32Array([1, 1]), ln.mean, ln.rstd, 1, 2);
  assert.equal([Array.from(lg.dx), Array.from(lg.dgamma), Array.from(lg.dbeta)], [[0, 0], [-1, 1], [1, 1]]);
  const table = new Float32Array([0, 1, 10, 11, 20, 21]);
  assert.equal(Array.from(await ref.gather(table, new Float32Array([2, 0, 2]), 3, 2)), [20, 21, 0, 1, 20, 21]);
  assert.equal(Array.from(await ref.scatterAdd(new Float32Array([2, 0, 2]), new Float32Array([1, 2, 3, 4, 5, 6]), 3, 2)), [3, 4, 0, 0, 6, 8]);
  // gelu(0) = 0, gelu'(0) = ½; gelu(±large) → x, 0
  assert.equal(Array.from(await ref.activation('gelu', new Float32Array([0, 10, -10]))), [0, 10, -0]);
  assert.equal(Array.from(await ref.activationGrad('gelu', new Float32Array([0]), new Float32Array([2]))), [1]);
  const ce = await ref.softmaxCrossEntropyIds(new Float32Array([7, 7, 7, 7]), new Float32Array([1]), 1, 4);
  assert.ok(Math.abs(ce.loss - Math.log(4)) < 1e-6, `ce loss ${ce.loss}`);
  assert.equal(Array.from(ce.grad), [0.25, -0.75, 0.25, 0.25]);
});

// ------------------------------------------------------------------ backends vs the float64 oracle

interface Backend {
  name: string;
  create: () => Promise<Kernels>;
  /** Absent here → skip with a note instead of failing (e.g. no OpenBLAS addon built). */
  optional?: boolean;
  /** Expected `mode` string. */
  mode: RegExp;
}

const BACKENDS: Backend[] = [
  { name: 'js', create: async () => createReferenceKernels(), mode: /^js$/ },
  { name: 'gpu.js:webasm', create: () => createKernels('gpu.js:webasm'), mode: /^gpu\.js:webasm(-async)?$/ },
  {
    name: 'gpu.js:webasm (sync matmul)',
    create: async () => createGpuJsKernels({ mode: 'webasm', asyncMatmul: false }),
    mode: /^gpu\.js:webasm$/,
  },
  { name: 'gpu.js:cpu', create: () => createKernels('gpu.js:cpu'), mode: /^gpu\.js:cpu$/ },
  { name: 'blas', create: () => createKernels('blas'), optional: !process.env.CI, mode: /^blas:/ },
];

const available: { b: Backend; k: Kernels }[] = [];
for (const b of BACKENDS) {
  try {
    available.push({ b, k: await b.create() });
  } catch (err) {
    if (!b.optional) throw err;
    console.warn(`(backend ${b.name} not tested: ${(err as Error).message})`);
  }
}

for (const { b, k } of available) {
  test(`${b.name}: adam and adamPredict give the bits of the plain-JS reference (the optimizer is not part of the mode), which matches float64 formulas`, async () => {
    const n = 100_003;
    let p: Float32Array = rand(n, 71, 1);
    let m: Float32Array = new Float32Array(n);
    let v: Float32Array = new Float32Array(n);
    let ref: { p: Float32Array; m: Float32Array; v: Float32Array } = { p, m, v };
    const [lr, beta1, beta2, eps] = [0.001, 0.9, 0.999, 1e-8];
    for (let step = 1; step <= 5; step++) {
      // Gradients over many magnitudes, zeros included.
      const g = rand(n, 100 + step, 1).map((x, i) => (i % 7 === 0 ? 0 : x * 10 ** ((i % 9) - 4)));
      const h = { lr, beta1, beta2, eps, c1: 1 - beta1 ** step, c2: 1 - beta2 ** step };
      const got = await k.adam(p, m, v, g, h);
      const want = adamStep(ref.p, ref.m, ref.v, g, h);
      assert.ok(bitsEqual(got.p, want.p) && bitsEqual(got.m, want.m) && bitsEqual(got.v, want.v), `step ${step}: same bits as the JS reference`);
      for (const i of [0, 1, 8, 1234, n - 1]) {
        const m64 = beta1 * m[i] + (1 - beta1) * g[i];
        const v64 = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
        const p64 = p[i] - (lr * (m64 / h.c1)) / (Math.sqrt(v64 / h.c2) + eps);
        assert.ok(Math.abs(got.p[i] - p64) <= 1e-6 * Math.abs(p64) + 1e-7, `p[${i}] = ${got.p[i]}, float64 ${p64}`);
      }
      ({ p, m, v } = got);
      ref = want;
    }
    const pred = await k.adamPredict(p, m, v, 0.003, eps);
    assert.ok(bitsEqual(pred, adamPredict(p, m, v, 0.003, eps)), 'adamPredict: same bits');
    await k.adam(p, m, v, new Float32Array(3), { lr, beta1, beta2, eps, c1: 0.1, c2: 0.001 }).then(
      () => assert.unreachable('a gradient of the wrong length is refused'),
      (err: Error) => assert.match(err.message, /elements/),
    );
  });

  test(`${b.name}: reports its mode`, () => {
    assert.match(k.mode, b.mode);
  });

  test(`${b.name}: matmul matches the oracle (all shapes, all transpositions)`, async () => {
    let seed = 1;
    for (const [m, kk, n] of MATMUL_SHAPES) {
      for (const [transA, transB] of TRANS) {
        const a = rand(m * kk, seed++);
        const bb = rand(kk * n, seed++);
        const { c: want, mag } = matmul64(a, bb, m, kk, n, transA, transB);
        const got = await k.matmul(a, bb, m, kk, n, { transA, transB });
        assertClose(got, want, (i) => 1e-4 * mag[i] + 1e-6, `matmul ${m}×${kk}×${n} transA=${transA} transB=${transB}`);
      }
    }
  });

  test(`${b.name}: addBias and sumRows match the oracle`, async () => {
    for (const [rows, cols] of [[1, 1], [7, 5], [64, 128], [3, 10]] as const) {
      const x = rand(rows * cols, rows * 31 + cols);
      const bias = rand(cols, cols + 7);
      const want = addBias64(x, bias, cols);
      assertClose(await k.addBias(x, bias, rows, cols), want, rel(want, 1e-5, 1e-6), `addBias ${rows}×${cols}`);
      const { sum: wantSum, mag } = sumRows64(x, cols);
      assertClose(await k.sumRows(x, rows, cols), wantSum, (i) => 1e-5 * mag[i] + 1e-6, `sumRows ${rows}×${cols}`);
    }
  });

  test(`${b.name}: activation and activationGrad match the oracle`, async () => {
    for (const fn of ACTS) {
      for (const n of ELEMENTWISE_LENGTHS) {
        // scale 6 reaches tanh/sigmoid saturation and both relu branches
        const x = rand(n, n + 3, 6);
        const dy = rand(n, n + 4);
        const want = Array.from(x, (v) => act64(fn, v));
        assertClose(await k.activation(fn, x), want, rel(want, 1e-5, 1e-6), `activation ${fn} n=${n}`);
        const wantGrad = Array.from(x, (v, i) => dy[i] * actGrad64(fn, v));
        assertClose(await k.activationGrad(fn, x, dy), wantGrad, rel(wantGrad, 1e-5, 1e-6), `activationGrad ${fn} n=${n}`);
      }
    }
  });

  test(`${b.name}: softmaxCrossEntropy matches the oracle (one-hot and soft targets)`, async () => {
    for (const [rows, cols] of LOSS_SHAPES) {
      const logits = rand(rows * cols, rows + cols, 5);
      for (const target of [oneHot(rows, cols, rows * 3), softTargets(rows, cols, rows * 5)]) {
        const want = softmaxCrossEntropy64(logits, target, rows, cols);
        const got = await k.softmaxCrossEntropy(logits, target, rows, cols);
        assertLossClose(got.loss, want.loss, `softmaxCE ${rows}×${cols}`);
        assertClose(got.grad, want.grad, rel(want.grad, 1e-5, 1e-6), `softmaxCE grad ${rows}×${cols}`);
      }
    }
  });

  test(`${b.name}: softmaxCrossEntropy is stable with huge logits`, async () => {
    // rows: a confident right answer, a confident wrong answer, all-equal huge values
    const logits = new Float32Array([1000, 0, -1000, 0, 1000, 999, 1e4, 1e4, 1e4]);
    const target = new Float32Array([1, 0, 0, 1, 0, 0, 0, 0, 1]);
    const want = softmaxCrossEntropy64(logits, target, 3, 3);
    const got = await k.softmaxCrossEntropy(logits, target, 3, 3);
    assert.ok(got.grad.every(Number.isFinite), `grad finite: ${Array.from(got.grad)}`);
    assertLossClose(got.loss, want.loss, 'softmaxCE huge logits');
    // row 1 loss ≈ 1000 (wrong by 1000), row 0 ≈ 0, row 2 = ln 3: mean ≈ (1000.31 + ln 3)/3
    assert.ok(Math.abs(got.loss - (1000 + Math.log(1 + Math.exp(-1)) + Math.log(3)) / 3) < 1e-3, `loss ${got.loss}`);
    assertClose(got.grad, want.grad, rel(want.grad, 1e-5, 1e-6), 'softmaxCE huge logits grad');
  });

  test(`${b.name}: mse matches the oracle`, async () => {
    for (const n of [1, 7, 640]) {
      const pred = rand(n, n + 11, 3);
      const target = rand(n, n + 12, 3);
      const want = mse64(pred, target);
      const got = await k.mse(pred, target);
      assertLossClose(got.loss, want.loss, `mse n=${n}`);
      assertClose(got.grad, want.grad, rel(want.grad, 1e-5, 1e-6), `mse grad n=${n}`);
    }
  });

  test(`${b.name}: batchedMatmul matches the oracle, and each slice has the bits of matmul on it`, async () => {
    let seed = 300;
    for (const [batch, m, kk, n] of BATCHED_SHAPES) {
      for (const [transA, transB] of TRANS) {
        const a = rand(batch * m * kk, seed++);
        const bb = rand(batch * kk * n, seed++);
        const { c: want, mag } = batchedMatmul64(a, bb, batch, m, kk, n, transA, transB);
        const what = `batchedMatmul ${batch}×${m}×${kk}×${n} transA=${transA} transB=${transB}`;
        const got = await k.batchedMatmul(a, bb, batch, m, kk, n, { transA, transB });
        assertClose(got, want, (i) => 1e-4 * mag[i] + 1e-6, what);
        for (let i = 0; i < batch; i++) {
          const one = await k.matmul(a.subarray(i * m * kk, (i + 1) * m * kk).slice(), bb.subarray(i * kk * n, (i + 1) * kk * n).slice(), m, kk, n, { transA, transB });
          assert.ok(bitsEqual(got.subarray(i * m * n, (i + 1) * m * n), one), `${what}: slice ${i} differs from matmul`);
        }
        assert.ok(bitsEqual(got, await k.batchedMatmul(a, bb, batch, m, kk, n, { transA, transB })), `${what}: not deterministic`);
      }
    }
    assert.equal(Array.from(await k.batchedMatmul(new Float32Array(0), new Float32Array(0), 2, 3, 0, 2)), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 'k = 0: zeros');
    await assertRejects(k.batchedMatmul(new Float32Array(6), new Float32Array(11), 2, 1, 3, 2), /\bb has 11 elements, needs 12/, 'batchedMatmul b too short');
    await assertRejects(k.batchedMatmul(new Float32Array(5), new Float32Array(12), 2, 1, 3, 2), /a has 5 elements/, 'batchedMatmul a too short');
  });

  test(`${b.name}: softmaxRows and softmaxRowsGrad match the oracle (scale, causal mask)`, async () => {
    for (const [rows, cols, causalT, scale] of SOFTMAX_CASES) {
      const what = `softmaxRows ${rows}×${cols} causalT=${causalT} scale=${scale}`;
      const x = rand(rows * cols, rows * 7 + cols, 6);
      const want = softmaxRows64(x, rows, cols, scale, causalT);
      const y = await k.softmaxRows(x, rows, cols, { scale, causalT });
      assertClose(y, want, rel(want, 2e-5, 1e-6), what);
      if (causalT !== undefined) {
        for (let r = 0; r < rows; r++) for (let c = (r % causalT) + 1; c < cols; c++) assert.is(y[r * cols + c], 0, `${what}: [${r},${c}] is masked`);
      }
      const dy = rand(rows * cols, rows * 11 + cols);
      const { dx: wantDx, mag } = softmaxRowsGrad64(y, dy, rows, cols, scale);
      const dx = await k.softmaxRowsGrad(y, dy, rows, cols, { scale });
      assertClose(dx, wantDx, (i) => 2e-5 * mag[i] + 1e-6, `${what} grad`);
      assert.ok(bitsEqual(y, await k.softmaxRows(x, rows, cols, { scale, causalT })), `${what}: not deterministic`);
      assert.ok(bitsEqual(dx, await k.softmaxRowsGrad(y, dy, rows, cols, { scale })), `${what} grad: not deterministic`);
    }
    // stable: scores far beyond exp's range
    const huge = await k.softmaxRows(new Float32Array([1e4, 1e4 - 1, -1e4, 3e4, 3e4, 3e4]), 2, 3);
    assertClose(huge, [1 / (1 + Math.exp(-1)), Math.exp(-1) / (1 + Math.exp(-1)), 0, 1 / 3, 1 / 3, 1 / 3], () => 2e-6, 'softmaxRows huge');
    await assertRejects(k.softmaxRows(new Float32Array(12), 4, 3, { causalT: 2 }), /causalT 2 needs cols = 2/, 'causalT ≠ cols');
    await assertRejects(k.softmaxRows(new Float32Array(4), 2, 2, { scale: 0 }), /scale must be a finite number > 0/, 'scale 0');
  });

  test(`${b.name}: layerNorm and layerNormGrad match the oracle`, async () => {
    const eps = 1e-5;
    for (const [rows, cols] of LAYER_NORM_SHAPES) {
      const what = `layerNorm ${rows}×${cols}`;
      const x = rand(rows * cols, rows * 13 + cols, 3).map((v, i) => v + (i % 3) * 0.5);
      const gamma = rand(cols, cols + 1, 2);
      const beta = rand(cols, cols + 2);
      const want = layerNorm64(x, gamma, beta, rows, cols, eps);
      const got = await k.layerNorm(x, gamma, beta, rows, cols, eps);
      assertClose(got.mean, want.mean, rel(want.mean, 1e-5, 1e-6), `${what} mean`);
      assertClose(got.rstd, want.rstd, rel(want.rstd, 1e-5, 1e-6), `${what} rstd`);
      const yMag = (i: number) => Math.abs(want.y[i] - beta[i % cols]) + Math.abs(beta[i % cols]);
      assertClose(got.y, want.y, (i) => 2e-5 * yMag(i) + 1e-6, `${what} y`);
      const dy = rand(rows * cols, rows * 17 + cols);
      const w = layerNormGrad64(x, gamma, dy, rows, cols, eps);
      const g = await k.layerNormGrad(x, gamma, dy, got.mean, got.rstd, rows, cols);
      assertClose(g.dx, w.dx, (i) => 2e-5 * w.dxMag[i] + 1e-6, `${what} dx`);
      assertClose(g.dgamma, w.dgamma, (i) => 1e-5 * w.dgammaMag[i] + 1e-6, `${what} dgamma`);
      assertClose(g.dbeta, w.dbeta, (i) => 1e-5 * w.dbetaMag[i] + 1e-6, `${what} dbeta`);
      const again = await k.layerNorm(x, gamma, beta, rows, cols, eps);
      assert.ok(bitsEqual(again.y, got.y) && bitsEqual(again.rstd, got.rstd), `${what}: not deterministic`);
      assert.ok(bitsEqual((await k.layerNormGrad(x, gamma, dy, got.mean, got.rstd, rows, cols)).dx, g.dx), `${what} dx: not deterministic`);
    }
    // a constant row: variance 0, so x̂ = 0 and y = beta (eps keeps rstd finite)
    const c = await k.layerNorm(new Float32Array([5, 5, 5]), new Float32Array([1, 2, 3]), new Float32Array([7, 8, 9]), 1, 3, eps);
    assert.equal(Array.from(c.y), [7, 8, 9]);
    await assertRejects(k.layerNorm(new Float32Array(6), new Float32Array(2), new Float32Array(3), 2, 3, eps), /gamma has 2 elements/, 'layerNorm gamma');
  });

  test(`${b.name}: gather and scatterAdd match the oracle; bad ids are refused`, async () => {
    for (const [tableRows, rows, cols] of [[1, 1, 1], [5, 13, 3], [27, 512, 64]] as const) {
      const table = rand(tableRows * cols, tableRows + cols);
      const ids = classIds(rows, tableRows, rows + 5);
      const got = await k.gather(table, ids, rows, cols);
      const want = Array.from({ length: rows * cols }, (_, i) => table[ids[Math.floor(i / cols)] * cols + (i % cols)]);
      assert.ok(bitsEqual(got, Float32Array.from(want)), `gather ${tableRows}/${rows}×${cols}: exact copies`);
      const dy = rand(rows * cols, rows + cols + 1);
      const { sum, mag } = scatterAdd64(ids, dy, tableRows, cols);
      const s1 = await k.scatterAdd(ids, dy, tableRows, cols);
      assertClose(s1, sum, (i) => 1e-5 * mag[i] + 1e-6, `scatterAdd ${tableRows}/${rows}×${cols}`);
      assert.ok(bitsEqual(s1, await k.scatterAdd(ids, dy, tableRows, cols)), 'scatterAdd: not deterministic');
    }
    const table = new Float32Array(6);
    for (const [bad, label] of [[3, '3'], [-1, '-1'], [0.5, '0.5'], [NaN, 'NaN']] as const) {
      await assertRejects(k.gather(table, new Float32Array([0, bad]), 2, 2), new RegExp(String.raw`ids\[1\] is ${label}, must be an integer in \[0, 3\)`), `gather id ${label}`);
      await assertRejects(k.scatterAdd(new Float32Array([bad]), new Float32Array(2), 3, 2), /ids\[0\] is .*must be an integer in \[0, 3\)/, `scatterAdd id ${label}`);
    }
  });

  test(`${b.name}: softmaxCrossEntropyIds matches the oracle and has the bits of the one-hot path`, async () => {
    for (const [rows, cols] of [...LOSS_SHAPES, [48, 27]] as const) {
      const logits = rand(rows * cols, rows + cols + 9, 5);
      const ids = classIds(rows, cols, rows * 7);
      const target = oneHotOf(ids, cols);
      const want = softmaxCrossEntropy64(logits, target, rows, cols);
      const got = await k.softmaxCrossEntropyIds(logits, ids, rows, cols);
      assertLossClose(got.loss, want.loss, `softmaxCEIds ${rows}×${cols}`);
      assertClose(got.grad, want.grad, rel(want.grad, 1e-5, 1e-6), `softmaxCEIds grad ${rows}×${cols}`);
      const oneHotResult = await k.softmaxCrossEntropy(logits, target, rows, cols);
      assert.is(got.loss, oneHotResult.loss, `softmaxCEIds ${rows}×${cols}: loss bits of the one-hot path`);
      assert.ok(bitsEqual(got.grad, oneHotResult.grad), `softmaxCEIds ${rows}×${cols}: grad bits of the one-hot path`);
    }
    await assertRejects(k.softmaxCrossEntropyIds(new Float32Array(6), new Float32Array([0, 3]), 2, 3), /ids\[1\] is 3/, 'id out of range');
  });

  test(`${b.name}: the transformer ops never mutate their inputs nor alias results`, async () => {
    const x = rand(4 * 4, 401);
    const g = rand(4, 402);
    const ids = new Float32Array([1, 0, 3, 1]);
    const inputs = [x, g, ids];
    const copies = inputs.map((a) => a.slice());
    const ln = await k.layerNorm(x, g, g, 4, 4, 1e-5);
    const outs = [
      await k.batchedMatmul(x, x, 1, 4, 4, 4),
      await k.softmaxRows(x, 4, 4, { causalT: 4 }),
      await k.softmaxRowsGrad(x, x, 4, 4),
      ln.y,
      ln.mean,
      ln.rstd,
      ...Object.values(await k.layerNormGrad(x, g, x, ln.mean, ln.rstd, 4, 4)),
      await k.gather(x, ids, 4, 4),
      await k.scatterAdd(ids, x, 4, 4),
      (await k.softmaxCrossEntropyIds(x, ids, 4, 4)).grad,
    ];
    inputs.forEach((a, i) => assert.ok(bitsEqual(a, copies[i]), `input #${i} mutated`));
    assert.is(new Set(outs.map((o) => o.buffer)).size, outs.length, 'two results share one buffer');
    assert.ok(!outs.some((o) => inputs.some((a) => a.buffer === o.buffer)), 'a result aliases an input');
  });

  test(`${b.name}: deterministic — same inputs give bit-identical outputs`, async () => {
    const [m, kk, n] = [64, 784, 128];
    const a = rand(m * kk, 101);
    const bb = rand(kk * n, 102);
    for (const [transA, transB] of TRANS) {
      const r1 = await k.matmul(a, bb, m, kk, n, { transA, transB });
      const r2 = await k.matmul(a, bb, m, kk, n, { transA, transB });
      assert.ok(bitsEqual(r1, r2), `matmul transA=${transA} transB=${transB} differs between runs`);
    }
    const x = rand(64 * 10, 103, 4);
    const t = oneHot(64, 10, 104);
    const l1 = await k.softmaxCrossEntropy(x, t, 64, 10);
    const l2 = await k.softmaxCrossEntropy(x, t, 64, 10);
    assert.is(l1.loss, l2.loss);
    assert.ok(bitsEqual(l1.grad, l2.grad), 'softmaxCE grad differs between runs');
    for (const fn of ACTS) {
      assert.ok(bitsEqual(await k.activation(fn, x), await k.activation(fn, x)), `activation ${fn}`);
      assert.ok(bitsEqual(await k.activationGrad(fn, x, x), await k.activationGrad(fn, x, x)), `activationGrad ${fn}`);
    }
    assert.ok(bitsEqual(await k.sumRows(x, 64, 10), await k.sumRows(x, 64, 10)), 'sumRows');
    const m1 = await k.mse(x, t);
    const m2 = await k.mse(x, t);
    assert.is(m1.loss, m2.loss);
    assert.ok(bitsEqual(m1.grad, m2.grad), 'mse grad');
  });

  test(`${b.name}: results never alias each other or the inputs, inputs are not mutated`, async () => {
    const [m, kk, n] = [64, 784, 128];
    const a1 = rand(m * kk, 201);
    const b1 = rand(kk * n, 202);
    const a1copy = a1.slice();
    const b1copy = b1.slice();
    const r1 = await k.matmul(a1, b1, m, kk, n);
    const r1copy = r1.slice();
    // concurrent calls too: an async backend must not hand out one buffer twice
    const [r2, r3] = await Promise.all([k.matmul(rand(m * kk, 203), b1, m, kk, n), k.matmul(a1, rand(kk * n, 204), m, kk, n)]);
    assert.ok(bitsEqual(r1, r1copy), 'an earlier matmul result changed after later calls');
    assert.ok(!bitsEqual(r2, r1) && !bitsEqual(r3, r1), 'different inputs gave the same result');
    for (const r of [r2, r3]) assert.ok(r.buffer !== r1.buffer, 'two results share one buffer');
    assert.ok(bitsEqual(a1, a1copy) && bitsEqual(b1, b1copy), 'matmul mutated its inputs');

    const x = rand(64 * 10, 205);
    const xcopy = x.slice();
    const outs: Float32Array[] = [];
    outs.push(await k.addBias(x, rand(10, 206), 64, 10));
    outs.push(await k.sumRows(x, 64, 10));
    for (const fn of ACTS) {
      outs.push(await k.activation(fn, x));
      outs.push(await k.activationGrad(fn, x, x));
    }
    outs.push((await k.softmaxCrossEntropy(x, oneHot(64, 10, 207), 64, 10)).grad);
    outs.push((await k.mse(x, rand(640, 208))).grad);
    const copies = outs.map((o) => o.slice());
    // the same calls again with other data must leave the first results alone
    const y = rand(64 * 10, 209);
    await k.addBias(y, rand(10, 210), 64, 10);
    await k.sumRows(y, 64, 10);
    for (const fn of ACTS) {
      await k.activation(fn, y);
      await k.activationGrad(fn, y, y);
    }
    await k.softmaxCrossEntropy(y, oneHot(64, 10, 211), 64, 10);
    await k.mse(y, rand(640, 212));
    outs.forEach((o, i) => assert.ok(bitsEqual(o, copies[i]), `result #${i} changed after later calls`));
    assert.ok(new Set(outs.map((o) => o.buffer)).size === outs.length, 'two results share one buffer');
    assert.ok(!outs.some((o) => o.buffer === x.buffer), 'a result aliases its input');
    assert.ok(bitsEqual(x, xcopy), 'an op mutated its input');
  });

  test(`${b.name}: wrong shapes are rejected with a clear error`, async () => {
    await assertRejects(k.matmul(new Float32Array(6), new Float32Array(6), 2, 3, 3), /\bb has 6 elements/, 'matmul b too short');
    await assertRejects(k.addBias(new Float32Array(6), new Float32Array(2), 2, 3), /bias has 2 elements/, 'addBias bias too short');
  });
}

// ------------------------------------------------------------------ gpu.js specifics

test('gpu.js:webasm async and sync matmul are bit-identical', async () => {
  const asyncK = createGpuJsKernels({ mode: 'webasm' });
  const syncK = createGpuJsKernels({ mode: 'webasm', asyncMatmul: false });
  try {
    for (const [m, kk, n] of [[64, 784, 128], [128, 64, 96], [7, 5, 3]] as const) {
      for (const [transA, transB] of TRANS) {
        const a = rand(m * kk, m + kk);
        const bb = rand(kk * n, kk + n);
        const x = await asyncK.matmul(a, bb, m, kk, n, { transA, transB });
        const y = await syncK.matmul(a, bb, m, kk, n, { transA, transB });
        assert.ok(bitsEqual(x, y), `${m}×${kk}×${n} transA=${transA} transB=${transB}`);
      }
    }
  } finally {
    asyncK.dispose();
    syncK.dispose();
  }
});

test('gpu.js: a disposed backend refuses work', async () => {
  const k = createGpuJsKernels({ mode: 'cpu' });
  await k.activation('relu', new Float32Array([1, -1]));
  k.dispose();
  await assertRejects(k.activation('relu', new Float32Array([1, -1])), /disposed/, 'after dispose');
});

test('gpu.js: headlessgl is refused cleanly where no GL context exists, or works', async () => {
  // The attempt alone is in the try: an assertion failing inside it must not be taken
  // for the "no GL here" refusal.
  let k: Kernels | undefined;
  let err: unknown;
  try {
    k = createGpuJsKernels({ mode: 'headlessgl' });
  } catch (e) {
    err = e;
  }
  if (k) {
    assert.is(k.mode, 'gpu.js:headlessgl');
    const got = await k.matmul(new Float32Array([1, 2, 3, 4]), new Float32Array([1, 1, 1, 1]), 2, 2, 2);
    assert.equal(Array.from(got), [3, 3, 7, 7]);
  } else {
    assert.instance(err, Error);
    // gpu.js's own refusal and ours both name the mode that could not be had
    assert.match((err as Error).message, /headlessgl/);
  }
});

// ------------------------------------------------------------------ createKernels

test('createKernels: an unknown mode names the valid ones', async () => {
  await assertRejects(createKernels('gpu.js:nope'), /unknown kernel mode "gpu\.js:nope"/, 'unknown mode');
  const msg = await createKernels('gpu.js:nope').catch((err: Error) => err.message);
  for (const m of KERNEL_MODES) assert.ok(String(msg).includes(m), `message does not list ${m}: ${msg}`);
});

test('createKernels: same mode → same instance; dispose evicts it', async () => {
  const a = await createKernels('js');
  assert.is(await createKernels('js'), a);
  assert.is(a.mode, 'js');
  a.dispose();
  const b = await createKernels('js');
  assert.is.not(b, a);
});

test('createKernels: mode defaults to DCNR_KERNEL_MODE', async () => {
  const saved = process.env.DCNR_KERNEL_MODE;
  process.env.DCNR_KERNEL_MODE = 'gpu.js:cpu';
  try {
    assert.is(await createKernels(), await createKernels('gpu.js:cpu'));
    process.env.DCNR_KERNEL_MODE = 'bogus';
    await assertRejects(createKernels(), /unknown kernel mode "bogus"/, 'bogus DCNR_KERNEL_MODE');
  } finally {
    if (saved === undefined) delete process.env.DCNR_KERNEL_MODE;
    else process.env.DCNR_KERNEL_MODE = saved;
  }
});

test('createKernels: auto picks a working backend', async () => {
  const k = await createKernels('auto');
  assert.match(k.mode, /^(gpu\.js:|blas:)/);
  const got = await k.matmul(new Float32Array([1, 2, 3, 4]), new Float32Array([1, 1, 1, 1]), 2, 2, 2);
  assert.equal(Array.from(got), [3, 3, 7, 7]);
});

test.run();
