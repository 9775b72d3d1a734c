import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { availableKernels, close, numericalGrad, probeIndices, randomArray } from '../../test/helpers/gradcheck.js';
import * as gelu from './gelu.js';
import * as relu from './relu.js';
import * as sigmoid from './sigmoid.js';
import * as tanh from './tanh.js';

// Forward within 1e-5 relative (+1e-6 abs); gradients within 1% (+1e-4 abs) of float64 central differences.
const FWD = { rtol: 1e-5, atol: 1e-6 };
const GRAD = { rtol: 1e-2, atol: 1e-4 };
const ROWS = 4;
const COLS = 9;

const types = [
  { def: relu.relu, ref: relu.reference.forward },
  { def: tanh.tanh, ref: tanh.reference.forward },
  { def: sigmoid.sigmoid, ref: sigmoid.reference.forward },
  { def: gelu.gelu, ref: gelu.reference.forward },
];

for (const k of await availableKernels()) {
  for (const { def, ref } of types) {
    test(`${def.type} forward and numerical gradient [${k.mode}]`, async () => {
      // Keep ReLU inputs away from its kink at 0, where the derivative is undefined.
      const x = randomArray(ROWS * COLS, `${def.type}-x`, 3).map((v) => (Math.abs(v) < 0.05 ? v + 0.1 : v));
      const r = randomArray(ROWS * COLS, `${def.type}-r`);
      const ctx = { k, config: {}, inFeatures: COLS, outFeatures: COLS };
      const { y, stash } = await def.forward(ctx, {}, { shape: [ROWS, COLS], data: x });
      assert.equal(y.shape, [ROWS, COLS]);
      y.data.forEach((v, i) => assert.ok(close(v, ref(x[i]), FWD.rtol, FWD.atol), `y[${i}] = ${v}, want ${ref(x[i])}`));
      const { dx } = await def.backward({ ...ctx, step: 1, needDx: true }, {}, { shape: [ROWS, COLS], data: r }, stash!);
      const L = (v: Float64Array) => v.reduce((s, xi, i) => s + ref(xi) * r[i], 0);
      for (const i of probeIndices(x.length, 36, 'p')) {
        const num = numericalGrad(L, x, i);
        assert.ok(close(dx!.data[i], num, GRAD.rtol, GRAD.atol), `dx[${i}] = ${dx!.data[i]}, numerical ${num}`);
      }
    });
  }
}

// Transformer activations are [batch, time, channels]: the shape passes through.
for (const k of await availableKernels()) {
  test(`activation.gelu keeps a rank-3 shape [${k.mode}]`, async () => {
    const x = randomArray(2 * 3 * 4, 'gelu-3d', 3);
    const ctx = { k, config: {}, inFeatures: 4, outFeatures: 4 };
    const { y, stash } = await gelu.gelu.forward(ctx, {}, { shape: [2, 3, 4], data: x });
    assert.equal(y.shape, [2, 3, 4]);
    y.data.forEach((v, i) => assert.ok(close(v, gelu.reference.forward(x[i]), FWD.rtol, FWD.atol), `y[${i}]`));
    const { dx } = await gelu.gelu.backward({ ...ctx, step: 1, needDx: true }, {}, { shape: [2, 3, 4], data: x }, stash!);
    assert.equal(dx!.shape, [2, 3, 4]);
  });
}

test.run();
