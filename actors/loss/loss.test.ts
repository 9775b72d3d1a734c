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
    // The reference rounds to float32 on the way in; difference in float64 by hand instead:
    const L64 = (v: Float64Array) => {
      let s = 0;
      for (let r = 0; r < ROWS; r++) {
        let max = -Infinity;
        for (let c = 0; c < COLS; c++) max = Math.max(max, v[r * COLS + c]);
        let sum = 0;
        for (let c = 0; c < COLS; c++) sum += Math.exp(v[r * COLS + c] - max);
        for (let c = 0; c < COLS; c++) if (t[r * COLS + c] > 0) s -= t[r * COLS + c] * (v[r * COLS + c] - max - Math.log(sum));
      }
      return s / ROWS;
    };
    assert.ok(close(loss, L(Float64Array.from(x)), LOSS.rtol, LOSS.atol), `loss ${loss} vs ${L(Float64Array.from(x))}`);
    for (let i = 0; i < x.length; i++) {
      const num = numericalGrad(L64, x, i);
      assert.ok(close(dx.data[i], num, GRAD.rtol, GRAD.atol), `dx[${i}] = ${dx.data[i]}, numerical ${num}`);
    }
  });

  test(`loss.softmaxCrossEntropy is stable on huge logits [${k.mode}]`, async () => {
    const x = new Float32Array(ROWS * COLS).fill(1000);
    x[3] = 3000;
    const { loss, dx } = await sce.softmaxCrossEntropy.loss({ k, config: {}, inFeatures: COLS, outFeatures: COLS }, { shape: [ROWS, COLS], data: x }, { shape: [ROWS, COLS], data: oneHot(ROWS, COLS) });
    assert.ok(Number.isFinite(loss), `loss ${loss}`);
    assert.ok(dx.data.every(Number.isFinite));
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

test.run();
