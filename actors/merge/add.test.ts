import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { close, numericalGrad, probeIndices, randomArray } from '../../test/helpers/gradcheck.js';
import { createKernels } from '../../runtime/kernels/index.js';
import { add, reference } from './add.js';

const ROWS = 3;
const COLS = 7;

test('merge.add: forward against the float64 reference, gradients numerically, left-to-right float32 order', async () => {
  const k = await createKernels('js');
  const xs = [0, 1, 2].map((j) => randomArray(ROWS * COLS, `add-x${j}`, 2));
  const ctx = { k, config: {}, inFeatures: COLS, outFeatures: COLS };
  const { y, stash } = await add.forward(ctx, {}, xs.map((data) => ({ shape: [ROWS, COLS], data })));
  const ref = reference.forward(xs);
  y.data.forEach((v, i) => assert.ok(close(v, ref[i], 1e-6, 1e-6), `y[${i}] = ${v}, want ${ref[i]}`));
  y.data.forEach((v, i) => assert.is(v, Math.fround(Math.fround(xs[0][i] + xs[1][i]) + xs[2][i]), 'the sum is (x0 + x1) + x2 in float32'));
  // d/dx_j of Σ r·(x0 + x1 + x2) is r for every input: numerically, per input.
  const r = randomArray(ROWS * COLS, 'add-r');
  const { dxs } = await add.backward({ ...ctx, step: 1, needDx: [true, false, true] }, {}, { shape: [ROWS, COLS], data: r }, stash ?? []);
  assert.is(dxs[1], undefined, 'no gradient where the producer wants none');
  for (const j of [0, 2]) {
    const L = (v: Float64Array) => reference.forward(xs.map((x, i) => (i === j ? Float32Array.from(v) : x))).reduce((s, yi, i) => s + yi * r[i], 0);
    for (const i of probeIndices(ROWS * COLS, 10, `p${j}`)) {
      const num = numericalGrad(L, xs[j], i);
      assert.ok(close(dxs[j]!.data[i], num, 1e-2, 1e-4), `dx${j}[${i}] = ${dxs[j]!.data[i]}, numerical ${num}`);
    }
  }
});

test.run();
