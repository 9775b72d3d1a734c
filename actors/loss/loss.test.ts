import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { availableKernels, close, numericalGrad, randomArray } from '../../test/helpers/gradcheck.js';
import * as mse from './mse.js';
import * as sce from './softmax-cross-entropy.js';

// Loss within 1e-5 relative of the float64 reference; gradients within 1% (+1e-5 abs).
const LOSS = { rtol: 1e-5, atol: 1e-6 };
const GRAD = { rtol: 1e-2, atol: 1e-5 };
const ROWS = 6;
const COLS = 10;

/**
 * Mean softmax cross-entropy and its gradient (softmax − t)/rows, in float64 through
 * log-sum-exp with the row max taken out: exact for huge logits too, unlike
 * `sce.reference.loss`, which clamps p at 1e-30 (so caps a row's loss near 69) and
 * rounds its input to float32.
 */
function sce64(v: ArrayLike<number>, t: Float32Array, rows: number, cols: number): { loss: number; grad: Float64Array } {
  let s = 0;
  const grad = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let c = 0; c < cols; c++) max = Math.max(max, v[r * cols + c]);
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += Math.exp(v[r * cols + c] - max);
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      if (t[i] > 0) s -= t[i] * (v[i] - max - Math.log(sum));
      grad[i] = (Math.exp(v[i] - max) / sum - t[i]) / rows;
    }
  }
  return { loss: s / rows, grad };
}

function oneHot(rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) t[r * cols + ((r * 7) % cols)] = 1;
  return t;
}

for (const k of await availableKernels()) {
  test(`loss.softmaxCrossEntropy value and numerical gradient [${k.mode}]`, async () => {
    const x = randomArray(ROWS * COLS, 'sce-x', 4);
    const t = oneHot(ROWS, COLS);
    const ctx = { k, config: {}, inFeatures: COLS, outFeatures: COLS };
    const { loss, dx } = await sce.softmaxCrossEntropy.loss(ctx, { shape: [ROWS, COLS], data: x }, { shape: [ROWS, COLS], data: t });
    const L = (v: Float64Array) => sce.reference.loss(Float32Array.from(v), t, ROWS, COLS);
    // The reference rounds to float32 on the way in; difference in float64 instead:
    const L64 = (v: Float64Array) => sce64(v, t, ROWS, COLS).loss;
    assert.ok(close(loss, L(Float64Array.from(x)), LOSS.rtol, LOSS.atol), `loss ${loss} vs ${L(Float64Array.from(x))}`);
    for (let i = 0; i < x.length; i++) {
      const num = numericalGrad(L64, x, i);
      assert.ok(close(dx.data[i], num, GRAD.rtol, GRAD.atol), `dx[${i}] = ${dx.data[i]}, numerical ${num}`);
    }
  });

  test(`loss.softmaxCrossEntropy is stable on huge logits [${k.mode}]`, async () => {
    // Row 0 is 2000 too sure of a wrong class (its target is class 0, its max class 3);
    // rows 1..5 are uniform. A naive exp overflows; a clamped log caps row 0's loss.
    const x = new Float32Array(ROWS * COLS).fill(1000);
    x[3] = 3000;
    const t = oneHot(ROWS, COLS);
    const { loss, dx } = await sce.softmaxCrossEntropy.loss({ k, config: {}, inFeatures: COLS, outFeatures: COLS }, { shape: [ROWS, COLS], data: x }, { shape: [ROWS, COLS], data: t });
    const { loss: want, grad: wantGrad } = sce64(x, t, ROWS, COLS);
    // the stable formula itself, against the value worked out by hand
    assert.ok(Math.abs(want - (2000 + (ROWS - 1) * Math.log(COLS)) / ROWS) < 1e-9, `float64 reference ${want}`);
    assert.ok(close(loss, want, LOSS.rtol, LOSS.atol), `loss ${loss} vs ${want}`);
    wantGrad.forEach((w, i) => assert.ok(close(dx.data[i], w, LOSS.rtol, LOSS.atol), `dx[${i}] = ${dx.data[i]}, want ${w}`));
  });

  test(`loss.mse value and numerical gradient [${k.mode}]`, async () => {
    const x = randomArray(ROWS * COLS, 'mse-x');
    const t = randomArray(ROWS * COLS, 'mse-t');
    const { loss, dx } = await mse.mse.loss({ k, config: {}, inFeatures: COLS, outFeatures: COLS }, { shape: [ROWS, COLS], data: x }, { shape: [ROWS, COLS], data: t });
    assert.ok(close(loss, mse.reference.loss(x, t), LOSS.rtol, LOSS.atol));
    const L = (v: Float64Array) => v.reduce((s, xi, i) => s + (xi - t[i]) ** 2, 0) / v.length;
    for (let i = 0; i < x.length; i++) {
      const num = numericalGrad(L, x, i);
      assert.ok(close(dx.data[i], num, GRAD.rtol, GRAD.atol), `dx[${i}] = ${dx.data[i]}, numerical ${num}`);
    }
  });
}

/** Class ids for `positions` rows of `cols` classes, and their one-hot rows. */
function ids(positions: number, cols: number): { ids: Float32Array; oneHot: Float32Array } {
  const id = Float32Array.from({ length: positions }, (_, r) => (r * 7 + 3) % cols);
  const oneHot = new Float32Array(positions * cols);
  id.forEach((c, r) => (oneHot[r * cols + c] = 1));
  return { ids: id, oneHot };
}

for (const k of await availableKernels()) {
  test(`loss.softmaxCrossEntropy with class-id targets ([B] and [B, T]): the bits of the one-hot path, and the numerical gradient [${k.mode}]`, async () => {
    const ctx = { k, config: {}, inFeatures: COLS, outFeatures: COLS };
    const [B, T] = [2, 3];
    for (const shape of [[ROWS], [B, T]]) {
      const positions = shape.reduce((a, b) => a * b, 1);
      const x = randomArray(positions * COLS, `ids-x-${shape}`, 4);
      const { ids: target, oneHot: hot } = ids(positions, COLS);
      const logits = { shape: [...shape, COLS], data: x };
      const got = await sce.softmaxCrossEntropy.loss(ctx, logits, { shape, data: target });
      const viaHot = await sce.softmaxCrossEntropy.loss(ctx, logits, { shape: [...shape, COLS], data: hot });
      assert.equal(got.dx.shape, [...shape, COLS]);
      assert.is(got.loss, viaHot.loss, `[${shape}]: loss bits of the one-hot target`);
      assert.equal(Array.from(got.dx.data), Array.from(viaHot.dx.data), `[${shape}]: grad bits of the one-hot target`);
      // mean over every position: the float64 reference over positions×COLS rows
      const L64 = (v: Float64Array) => sce64(v, hot, positions, COLS).loss;
      assert.ok(close(got.loss, L64(Float64Array.from(x)), LOSS.rtol, LOSS.atol), `[${shape}] loss ${got.loss}`);
      for (let i = 0; i < x.length; i++) {
        const num = numericalGrad(L64, x, i);
        assert.ok(close(got.dx.data[i], num, GRAD.rtol, GRAD.atol), `[${shape}] dx[${i}] = ${got.dx.data[i]}, numerical ${num}`);
      }
    }
  });

  test(`loss.softmaxCrossEntropy refuses an id out of range and a target of another shape; predict keeps rank 3 [${k.mode}]`, async () => {
    const ctx = { k, config: {}, inFeatures: 3, outFeatures: 3 };
    const x = { shape: [2, 2, 3], data: randomArray(12, 'p3') };
    const fails = async (target: { shape: number[]; data: Float32Array }, re: RegExp) => {
      const err = await sce.softmaxCrossEntropy.loss(ctx, x, target).then(() => undefined, (e: Error) => e);
      assert.ok(err instanceof Error && re.test(err.message), `expected ${re}, got ${err}`);
    };
    await fails({ shape: [2, 2], data: Float32Array.of(0, 1, 3, 2) }, /ids\[2\] is 3, must be an integer in \[0, 3\)/);
    await fails({ shape: [2, 2], data: Float32Array.of(0, 1, 0.5, 2) }, /ids\[2\] is 0\.5/);
    await fails({ shape: [4], data: new Float32Array(4) }, /target shape \[4\] is neither the logits' \[2,2,3\] \(one-hot\) nor \[2,2\] \(class ids\)/);
    const p = await sce.softmaxCrossEntropy.predict!(ctx, x);
    assert.equal(p.shape, [2, 2, 3]);
    const want = sce.reference.softmax(x.data, 4, 3);
    assert.equal(Array.from(p.data), Array.from(want));
    for (let r = 0; r < 4; r++) assert.ok(Math.abs(p.data[r * 3] + p.data[r * 3 + 1] + p.data[r * 3 + 2] - 1) < 1e-6, `row ${r} sums to 1`);
  });
}

test.run();
