import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createKernels } from '../../runtime/kernels/index.js';
import { createRng } from '../../runtime/rng.js';
import { availableKernels, close, numericalGrad, probeIndices, randomArray } from '../../test/helpers/gradcheck.js';
import { layerNorm, reference } from './layer-norm.js';

// A [batch, time, channels] input: rows = B·T.
const B = 2;
const T = 3;
const C = 7;
const ROWS = B * T;
// Float32 kernels against a float64 reference: forward within 1e-4 relative (+1e-5 abs);
// gradients within 2% relative (+1e-4 abs) of float64 central differences.
const FWD = { rtol: 1e-4, atol: 1e-5 };
const GRAD = { rtol: 2e-2, atol: 1e-4 };
const sgd = { optimizer: { kind: 'sgd', lr: 1, momentum: 0 } };

const kernelsList = await availableKernels();

test('layer.layerNorm init: gamma 1, beta 0, Adam slots by default', () => {
  const t = layerNorm.init!({ config: layerNorm.config.parse({}), inFeatures: C, outFeatures: C, rng: createRng('ln') });
  assert.equal(Array.from(t.gamma), new Array(C).fill(1));
  assert.equal(Array.from(t.beta), new Array(C).fill(0));
  assert.ok(t.gamma_m && t.gamma_v && t.beta_m && t.beta_v);
  assert.is(layerNorm.config.parse({}).eps, 1e-5);
});

for (const k of kernelsList) {
  test(`layer.layerNorm forward (rank 3) matches the reference [${k.mode}]`, async () => {
    const config = layerNorm.config.parse(sgd);
    const t = { gamma: randomArray(C, 'g', 2), beta: randomArray(C, 'b') };
    const x = randomArray(ROWS * C, 'x', 3);
    const { y, stash } = await layerNorm.forward({ k, config, inFeatures: C, outFeatures: C }, t, { shape: [B, T, C], data: x });
    assert.equal(y.shape, [B, T, C]);
    assert.is(stash!.length, 4);
    assert.is(stash![3], t.gamma, 'no staleness: gamma itself is stashed');
    const want = reference.forward(x, t.gamma, t.beta, ROWS, C);
    want.forEach((w, i) => assert.ok(close(y.data[i], w, FWD.rtol, FWD.atol), `y[${i}] = ${y.data[i]}, want ${w}`));
  });

  test(`layer.layerNorm backward matches numerical gradients: dx, dgamma, dbeta [${k.mode}]`, async () => {
    const config = layerNorm.config.parse(sgd);
    const t = { gamma: randomArray(C, 'g2', 2), beta: randomArray(C, 'b2') };
    const x = randomArray(ROWS * C, 'x2', 3);
    const r = randomArray(ROWS * C, 'r2'); // L = Σ y ⊙ r
    const ctx = { k, config, inFeatures: C, outFeatures: C };
    const { stash } = await layerNorm.forward(ctx, t, { shape: [B, T, C], data: x });
    const res = await layerNorm.backward({ ...ctx, step: 1, needDx: true }, t, { shape: [B, T, C], data: r }, stash!);
    assert.equal(res.dx!.shape, [B, T, C]);
    const L = (xx: ArrayLike<number>, g: ArrayLike<number>, b: ArrayLike<number>) => reference.forward(xx, g, b, ROWS, C).reduce((s, y, i) => s + y * r[i], 0);
    const [x64, g64, b64] = [x, t.gamma, t.beta].map((a) => Float64Array.from(a));
    for (const i of probeIndices(x.length, 30, 'px')) {
      const num = numericalGrad((v) => L(v, g64, b64), x64, i);
      assert.ok(close(res.dx!.data[i], num, GRAD.rtol, GRAD.atol), `dx[${i}] = ${res.dx!.data[i]}, numerical ${num}`);
    }
    for (let i = 0; i < C; i++) {
      const numG = numericalGrad((v) => L(x64, v, b64), g64, i);
      const gotG = t.gamma[i] - res.tensors!.gamma[i]; // SGD lr=1: new = old − grad
      assert.ok(close(gotG, numG, GRAD.rtol, GRAD.atol), `dgamma[${i}] = ${gotG}, numerical ${numG}`);
      const numB = numericalGrad((v) => L(x64, g64, v), b64, i);
      const gotB = t.beta[i] - res.tensors!.beta[i];
      assert.ok(close(gotB, numB, GRAD.rtol, GRAD.atol), `dbeta[${i}] = ${gotB}, numerical ${numB}`);
    }
    const noDx = await layerNorm.backward({ ...ctx, step: 1, needDx: false }, t, { shape: [B, T, C], data: r }, stash!);
    assert.is(noDx.dx, undefined, 'no dx when not needed');
  });
}

test('staleness: the forward uses gamma predicted ahead and stashes it; dx uses the stashed gamma', async () => {
  const k = await createKernels('js');
  const config = layerNorm.config.parse({});
  const t0 = layerNorm.init!({ config, inFeatures: C, outFeatures: C, rng: createRng('s') });
  const t: Record<string, Float32Array> = { ...t0, gamma_m: randomArray(C, 'gm'), gamma_v: randomArray(C, 'gv').map(Math.abs), beta_m: randomArray(C, 'bm'), beta_v: randomArray(C, 'bv').map(Math.abs) };
  const ctx = { k, config, inFeatures: C, outFeatures: C };
  const x = randomArray(ROWS * C, 'xs', 3);
  const { y, stash } = await layerNorm.forward({ ...ctx, staleness: 2 }, t, { shape: [B, T, C], data: x });
  const predict = (p: Float32Array, m: Float32Array, v: Float32Array) => Float32Array.from(p, (w, i) => w - (2 * 0.001 * m[i]) / (Math.sqrt(v[i]) + 1e-8));
  const gamma = predict(t.gamma, t.gamma_m, t.gamma_v);
  const beta = predict(t.beta, t.beta_m, t.beta_v);
  reference.forward(x, gamma, beta, ROWS, C).forEach((w, i) => assert.ok(close(y.data[i], w, FWD.rtol, FWD.atol), `y[${i}] uses the predicted parameters`));
  assert.ok(stash![3] !== t.gamma && close(stash![3][1], gamma[1], 1e-6, 1e-7), 'the predicted gamma is stashed');
  const dy = randomArray(ROWS * C, 'dys');
  const res = await layerNorm.backward({ ...ctx, step: 2, needDx: true }, t, { shape: [B, T, C], data: dy }, stash!);
  const want = await k.layerNormGrad(x, gamma, dy, stash![1], stash![2], ROWS, C);
  res.dx!.data.forEach((v, i) => assert.ok(close(v, want.dx[i], 1e-6, 1e-7), `dx[${i}] uses the stashed gamma`));
});

test('layer.layerNorm config is validated', () => {
  assert.throws(() => layerNorm.config.parse({ eps: 0 }));
  assert.throws(() => layerNorm.config.parse({ optimizer: { kind: 'rmsprop' } }));
});

test.run();
