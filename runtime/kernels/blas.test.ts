/**
 * Tests for the OpenBLAS backend (runtime/kernels/blas.ts + native/blas addon).
 *
 * Every op is checked against an independent float64 plain-JS reference
 * (./float64-oracle.ts), on seeded random data. If the addon is not built every test FAILS with the
 * build instruction: CI installs libopenblas-dev, so a missing addon is a bug there.
 *
 * Run: node --import tsx runtime/kernels/blas.test.ts
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BLAS_ADDON_PATH, createBlasKernels, ONE_THREAD_BELOW, type BlasKernels } from './blas.js';
import { act64, actGrad64, bitsEqual, matmul64, mse64, softmaxCrossEntropy64, sumRows64 } from './float64-oracle.js';
import type { ActivationFn } from './types.js';
import { mulberry32 as rng, rand as randArray } from '../../test/helpers/random.js';

// ---------------------------------------------------------------- helpers

/** Asserts |got − want| ≤ tol(i) for every element, naming the first offender. */
function assertClose(got: Float32Array, want: ArrayLike<number>, tol: (i: number) => number, what: string): void {
  assert.is(got.length, want.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    if (!(err <= tol(i))) assert.unreachable(`${what}: element ${i} is ${got[i]}, expected ${want[i]} (|err| ${err} > ${tol(i)})`);
  }
}

/** Relative tolerance with an absolute floor, for elementwise results. */
const rel = (want: ArrayLike<number>, r: number, abs = 1e-12) => (i: number) => r * Math.abs(want[i]) + abs;

let shared: Promise<BlasKernels> | undefined;
/** One 2-thread instance for most tests; rejects with the build instruction if the addon is missing. */
function blas(): Promise<BlasKernels> {
  shared ??= createBlasKernels({ threads: 2 });
  return shared;
}

// ---------------------------------------------------------------- tests

test('addon is built and loads; threads default to the core count; mode shows the thread count', async () => {
  // The default is what is under test, so the env override must not be in play; and the
  // shared instance is pinned to 2 threads, so it says nothing about the default.
  const before = process.env.DCNR_BLAS_THREADS;
  delete process.env.DCNR_BLAS_THREADS;
  try {
    let k: BlasKernels;
    try {
      k = await createBlasKernels();
    } catch (e) {
      assert.unreachable(`OpenBLAS backend failed to load: ${(e as Error).message}`);
      return;
    }
    // OpenBLAS clamps a request to the MAX_THREADS of its build (in its config string).
    const max = Number(/MAX_THREADS=(\d+)/.exec(k.config)?.[1] ?? Infinity);
    const want = Math.min(availableParallelism(), max);
    assert.is(k.threads, want);
    assert.is(k.mode, `blas:openblas-${k.coreName.toLowerCase()}-${want}t`);
    assert.match(k.config, /OpenBLAS/);
    assert.ok(k.coreName.length > 0);
    // An explicit count is honoured whatever the core count (up to MAX_THREADS).
    for (const n of [1, 3]) assert.is((await createBlasKernels({ threads: n })).mode, `blas:openblas-${k.coreName.toLowerCase()}-${n}t`);
  } finally {
    if (before !== undefined) process.env.DCNR_BLAS_THREADS = before;
  }
});

test('threads default from DCNR_BLAS_THREADS; a bad value is a clear error', async () => {
  const before = process.env.DCNR_BLAS_THREADS;
  try {
    process.env.DCNR_BLAS_THREADS = '1';
    assert.match((await createBlasKernels()).mode, /^blas:openblas-[a-z0-9]+-1t$/);
    process.env.DCNR_BLAS_THREADS = 'two';
    try {
      await createBlasKernels();
      assert.unreachable('should throw');
    } catch (e) {
      assert.match((e as Error).message, /DCNR_BLAS_THREADS must be a positive integer/);
    }
    try {
      await createBlasKernels({ threads: 0 });
      assert.unreachable('should throw');
    } catch (e) {
      assert.match((e as Error).message, /threads must be a positive integer/);
    }
  } finally {
    if (before === undefined) delete process.env.DCNR_BLAS_THREADS;
    else process.env.DCNR_BLAS_THREADS = before;
  }
});

// Tolerance: sgemm accumulates in float32, so the error of each element is bounded by
// about k·ε·Σ_p|a_ip·b_pj| (ε = 2⁻²⁴ ≈ 6e-8). For k ≤ 784 that is ≤ 4.7e-5, so we allow
// 1e-4 × Σ|a·b| (i.e. 1e-4 relative to the magnitude of the terms, robust to cancellation).
const MATMUL_REL = 1e-4;
const SHAPES: Array<[number, number, number]> = [
  [1, 1, 1],
  [7, 5, 3],
  [3, 1, 4],
  [33, 17, 65],
  [64, 784, 128],
];

for (const [m, k, n] of SHAPES) {
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      test(`matmul ${m}x${k}x${n} transA=${transA} transB=${transB} matches float64 reference`, async () => {
        const K = await blas();
        const seed = m * 1_000_003 + k * 1009 + n + (transA ? 7 : 0) + (transB ? 13 : 0);
        const a = randArray(m * k, seed);
        const b = randArray(k * n, seed + 1);
        const aCopy = a.slice();
        const bCopy = b.slice();
        const c = await K.matmul(a, b, m, k, n, { transA, transB });
        const { c: want, mag } = matmul64(a, b, m, k, n, transA, transB);
        assertClose(c, want, (i) => MATMUL_REL * mag[i] + 1e-30, 'matmul');
        assert.ok(bitsEqual(a, aCopy) && bitsEqual(b, bCopy), 'inputs are not mutated');
      });
    }
  }
}

test('matmul with an empty dimension: k = 0 gives zeros, m = 0 gives an empty result', async () => {
  const K = await blas();
  const z = await K.matmul(new Float32Array(0), new Float32Array(0), 2, 0, 3);
  assert.equal(Array.from(z), [0, 0, 0, 0, 0, 0]);
  assert.is((await K.matmul(new Float32Array(0), new Float32Array(12), 0, 3, 4)).length, 0);
});

test('matmul is bit-identical on repeat, with 2 threads and with 1 thread', async () => {
  const two = await blas();
  const one = await createBlasKernels({ threads: 1 });
  // Over ONE_THREAD_BELOW: the 2-thread instance uses both threads.
  const [m, k, n] = [512, 300, 256];
  assert.ok(m * k * n >= ONE_THREAD_BELOW);
  const a = randArray(m * k, 42);
  const b = randArray(k * n, 43);
  const bT = randArray(m * n, 44);
  for (const K of [two, one]) {
    const first = await K.matmul(a, b, m, k, n);
    for (let r = 0; r < 3; r++) assert.ok(bitsEqual(first, await K.matmul(a, b, m, k, n)), `${K.mode} repeat ${r}`);
    // a stored m×k with transA is op(A) = k×m, so it pairs with an m×n right side
    const firstT = await K.matmul(a, bT, k, m, n, { transA: true });
    assert.ok(bitsEqual(firstT, await K.matmul(a, bT, k, m, n, { transA: true })), `${K.mode} transA repeat`);
  }
  // Interleaving instances: each re-pins its own thread count, so results stay reproducible.
  const ref2 = await two.matmul(a, b, m, k, n);
  await one.matmul(a, b, m, k, n);
  assert.ok(bitsEqual(ref2, await two.matmul(a, b, m, k, n)), '2t result unchanged after a 1t call');
});

test('a product under ONE_THREAD_BELOW runs on one thread: the same bits from a 2-thread and a 1-thread instance', async () => {
  const two = await blas();
  const one = await createBlasKernels({ threads: 1 });
  const [m, k, n] = [64, 784, 128]; // mnist-mlp's first layer
  assert.ok(m * k * n < ONE_THREAD_BELOW);
  const a = randArray(m * k, 7);
  const b = randArray(k * n, 8);
  assert.ok(bitsEqual(await two.matmul(a, b, m, k, n), await one.matmul(a, b, m, k, n)));
});

test('batchedMatmul: every slice has the bits of matmul on it, on 2 threads (slices over ONE_THREAD_BELOW) and on 1', async () => {
  const two = await blas();
  const [batch, m, k, n] = [2, 512, 300, 256];
  assert.ok(m * k * n >= ONE_THREAD_BELOW);
  const a = randArray(batch * m * k, 45);
  const b = randArray(batch * k * n, 46);
  const got = await two.batchedMatmul(a, b, batch, m, k, n);
  for (let i = 0; i < batch; i++) {
    const one = await two.matmul(a.slice(i * m * k, (i + 1) * m * k), b.slice(i * k * n, (i + 1) * k * n), m, k, n);
    assert.ok(bitsEqual(got.subarray(i * m * n, (i + 1) * m * n), one), `slice ${i}`);
  }
  const { c, mag } = matmul64(a.subarray(m * k), b.subarray(k * n), m, k, n);
  assertClose(got.subarray(m * n), c, (i) => 1e-4 * mag[i] + 1e-6, 'slice 1 against float64');
});

test('addBias and sumRows match the reference', async () => {
  const K = await blas();
  for (const [rows, cols] of [[1, 1], [7, 5], [64, 128]] as const) {
    const x = randArray(rows * cols, rows + cols);
    const bias = randArray(cols, rows * cols);
    const y = await K.addBias(x, bias, rows, cols);
    // one float32 rounding of an exact sum: half an ulp, 6e-8 relative
    assertClose(y, Array.from(x, (v, i) => v + bias[i % cols]), rel(y, 1e-7), 'addBias');
    const s = await K.sumRows(x, rows, cols);
    const { sum: want } = sumRows64(x, cols);
    assertClose(s, want, (i) => 1e-6 * Math.abs(want[i]) + 1e-6, 'sumRows'); // float64 sum, one rounding
  }
});

for (const fn of ['relu', 'tanh', 'sigmoid'] as const) {
  test(`activation and activationGrad ${fn} match the reference`, async () => {
    const K = await blas();
    const x = randArray(1000, fn.length, 6);
    x[0] = 0;
    x[1] = -0;
    x[2] = 40; // saturated
    x[3] = -40;
    const dy = randArray(1000, 99);
    const y = await K.activation(fn, x);
    // float64 math, one float32 rounding: 1e-6 relative (+1e-7 absolute near 0)
    assertClose(y, Array.from(x, (v) => act64(fn, v)), (i) => 1e-6 * Math.abs(y[i]) + 1e-7, fn);
    const dx = await K.activationGrad(fn, x, dy);
    assertClose(dx, Array.from(x, (v, i) => dy[i] * actGrad64(fn, v)), (i) => 1e-6 * Math.abs(dx[i]) + 1e-7, `${fn}'`);
  });
}

test('softmaxCrossEntropy matches the reference (one-hot, soft targets, huge logits)', async () => {
  const K = await blas();
  for (const [rows, cols, scale] of [[1, 1, 1], [7, 5, 3], [64, 10, 4], [3, 4, 1e4]] as const) {
    const logits = randArray(rows * cols, rows * 31 + cols, scale);
    const target = new Float32Array(rows * cols);
    const r = rng(rows);
    for (let i = 0; i < rows; i++) {
      if (i % 2 === 0) target[i * cols + Math.floor(r() * cols)] = 1; // one-hot
      else for (let c = 0; c < cols; c++) target[i * cols + c] = 1 / cols; // soft
    }
    const { loss, grad } = await K.softmaxCrossEntropy(logits, target, rows, cols);
    const { loss: want, grad: wantGrad } = softmaxCrossEntropy64(logits, target, rows, cols);
    assert.ok(Number.isFinite(loss), 'loss is finite');
    // per-row loss rounded to float32: 1e-6 relative
    assert.ok(Math.abs(loss - want) <= 1e-6 * Math.abs(want) + 1e-7, `loss ${loss} vs ${want}`);
    assertClose(grad, wantGrad, () => 1e-7, 'softmax grad');
  }
});

test('mse matches the reference', async () => {
  const K = await blas();
  const pred = randArray(777, 5);
  const target = randArray(777, 6);
  const { loss, grad } = await K.mse(pred, target);
  const { loss: want, grad: wantGrad } = mse64(pred, target);
  assert.ok(Math.abs(loss - want) <= 1e-6 * want, `loss ${loss} vs ${want}`);
  assertClose(grad, wantGrad, rel(grad, 1e-6), 'mse grad');
});

/** Awaits `p` and asserts it rejects with a message matching `re`. */
async function rejects(p: () => Promise<unknown> | unknown, re: RegExp): Promise<void> {
  try {
    await p();
  } catch (e) {
    assert.ok(e instanceof Error, 'throws an Error');
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable(`expected an error matching ${re}`);
}

test('bad kernel calls throw clear errors', async () => {
  const K = await blas();
  const a = new Float32Array(12);
  const b = new Float32Array(8);
  await rejects(() => K.matmul(new Float32Array(10), b, 3, 4, 2), /matmul: a has 10 elements, needs 12/);
  await rejects(() => K.matmul(a, new Float32Array(7), 3, 4, 2), /matmul: b has 7 elements, needs 8/);
  await rejects(() => K.matmul(a, b, -3, 4, 2), /matmul: m must be a non-negative integer/);
  await rejects(() => K.matmul(a, b, 3, 4.5, 2), /matmul: k must be a non-negative integer/);
  await rejects(() => K.matmul(a, b, 3, 4, NaN), /matmul: n must be a non-negative integer/);
  await rejects(() => K.matmul(new Float64Array(12) as unknown as Float32Array, b, 3, 4, 2), /a must be a Float32Array/);
  await rejects(() => K.matmul(a, [1, 2] as unknown as Float32Array, 3, 4, 2), /b must be a Float32Array/);
  await rejects(() => K.addBias(a, new Float32Array(3), 3, 4), /addBias: bias has 3 elements, needs 4/);
  await rejects(() => K.sumRows(a, 5, 4), /sumRows: dy has 12 elements, needs 20/);
  await rejects(() => K.activation('swish' as ActivationFn, a), /activation: unknown activation "swish"/);
  await rejects(() => K.activationGrad('relu', a, b), /x has 12 elements but dy has 8/);
  await rejects(() => K.softmaxCrossEntropy(a, b, 3, 4), /target has 8 elements, needs 12/);
  await rejects(() => K.softmaxCrossEntropy(new Float32Array(0), new Float32Array(0), 0, 4), /needs at least one row and one column/);
  await rejects(() => K.mse(a, b), /pred has 12 elements but target has 8/);
  await rejects(() => K.mse(new Float32Array(0), new Float32Array(0)), /empty/);
  // and the backend still works afterwards
  const c = await K.matmul(new Float32Array([2]), new Float32Array([3]), 1, 1, 1);
  assert.equal(Array.from(c), [6]);
});

test('bad addon calls throw clear errors and never crash the process', () => {
  const addon = createRequire(import.meta.url)(BLAS_ADDON_PATH) as {
    sgemm: (...args: unknown[]) => void;
    setThreads: (n: unknown) => void;
  };
  const f = (n: number) => new Float32Array(n);
  const throws = (fn: () => void, re: RegExp) => assert.throws(fn, (e: Error) => re.test(e.message), String(re));
  throws(() => addon.sgemm(false, false, 3, 4, 2, 1, f(5), f(8), 0, f(12)), /sgemm: a has 5 elements, needs 6 for 3x2/);
  throws(() => addon.sgemm(true, false, 3, 4, 2, 1, f(6), f(7), 0, f(12)), /sgemm: b has 7 elements, needs 8 for 2x4/);
  throws(() => addon.sgemm(false, true, 3, 4, 2, 1, f(6), f(8), 0, f(11)), /sgemm: c has 11 elements, needs 12 for 3x4/);
  throws(() => addon.sgemm(false, false, -1, 1, 1, 1, f(1), f(1), 0, f(1)), /sgemm: m must be an integer/);
  throws(() => addon.sgemm(false, false, 1, 0, 1, 1, f(1), f(1), 0, f(1)), /sgemm: n must be an integer/);
  throws(() => addon.sgemm(false, false, 1, 1, 2 ** 40, 1, f(1), f(1), 0, f(1)), /sgemm: k must be an integer/);
  throws(() => addon.sgemm(false, false, 1, 1, 1, NaN, f(1), f(1), 0, f(1)), /sgemm: alpha must be finite/);
  throws(() => addon.sgemm(1, false, 1, 1, 1, 1, f(1), f(1), 0, f(1)), /sgemm: transA must be a boolean/);
  throws(() => addon.sgemm(false, false, 1, 1, 1, 1, [1], f(1), 0, f(1)), /sgemm: a must be a Float32Array/);
  throws(() => addon.sgemm(false, false, 1, 1, 1, 1, f(1), new Float64Array(1), 0, f(1)), /sgemm: b must be a Float32Array/);
  throws(() => addon.sgemm(false, false, 1, 1, 1, 1, f(1), f(1), 0), /expected 10 arguments/);
  const x = f(4);
  throws(() => addon.sgemm(false, false, 2, 2, 2, 1, x, f(4), 0, x), /c must not share memory with a/);
  const buf = new ArrayBuffer(64);
  throws(
    () => addon.sgemm(false, false, 2, 2, 2, 1, f(4), new Float32Array(buf, 0, 4), 0, new Float32Array(buf, 8, 4)),
    /c must not share memory with b/,
  );
  const adam = (addon as unknown as { adam: (...a: unknown[]) => void; adamPredict: (...a: unknown[]) => void });
  throws(() => adam.adam(f(4), f(4), f(4), f(3), f(4), f(4), f(4), 0.001, 0.9, 0.999, 1e-8, 0.1, 0.001), /adam: g has 3 elements, p has 4/);
  throws(() => adam.adam(f(4), f(4), f(4), f(4), x, f(4), x, 0.001, 0.9, 0.999, 1e-8, 0.1, 0.001), /adam: out must not share memory with v/);
  throws(() => adam.adam(f(4), f(4), f(4), f(4), f(4), f(4), f(4), NaN, 0.9, 0.999, 1e-8, 0.1, 0.001), /adam: lr must be finite/);
  throws(() => adam.adam(f(4), f(4), [1], f(4), f(4), f(4), f(4), 0.001, 0.9, 0.999, 1e-8, 0.1, 0.001), /adam: v0 must be a Float32Array/);
  throws(() => adam.adamPredict(f(4), f(4), f(4), f(4), 0.1), /adamPredict: expected 6 arguments/);
  // Adjacent, non-overlapping views of one buffer are fine.
  addon.sgemm(false, false, 2, 2, 2, 1, new Float32Array(buf, 0, 4), f(4), 0, new Float32Array(buf, 16, 4));
  // A detached buffer reads as length 0.
  const gone = f(4);
  structuredClone(gone.buffer, { transfer: [gone.buffer] });
  throws(() => addon.sgemm(false, false, 2, 2, 1, 1, gone, f(2), 0, f(4)), /a has 0 elements, needs 2/);
  throws(() => addon.setThreads(0), /setThreads: n must be an integer/);
  throws(() => addon.setThreads('2'), /setThreads: n must be a number/);
  // alpha/beta and views with a byteOffset are honoured: C = 2·A·B + 0.5·C
  const c = new Float32Array([10, 20, 30, 40]);
  addon.sgemm(false, false, 2, 2, 1, 2, new Float32Array(buf, 32, 2).fill(1), new Float32Array([1, 2]), 0.5, c);
  assert.equal(Array.from(c), [7, 14, 17, 24]);
});

test('dispose makes later calls reject', async () => {
  const K = await createBlasKernels({ threads: 1 });
  K.dispose();
  await rejects(() => K.matmul(new Float32Array(1), new Float32Array(1), 1, 1, 1), /disposed/);
});

test.run();
