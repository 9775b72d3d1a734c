import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createRng } from '../../runtime/rng.js';
import { availableKernels, close, numericalGrad, probeIndices, randomArray } from '../../test/helpers/gradcheck.js';
import { dense, reference } from './dense.js';

const ROWS = 5;
const IN = 7;
const OUT = 3;
// Float32 kernels against a float64 reference: forward within 1e-4 relative (+1e-5 abs);
// gradients within 2% relative (+1e-4 abs), the usual bar for float32 finite differences.
const FWD = { rtol: 1e-4, atol: 1e-5 };
const GRAD = { rtol: 2e-2, atol: 1e-4 };

const kernelsList = await availableKernels();

for (const k of kernelsList) {
  test(`layer.dense forward matches the reference [${k.mode}]`, async () => {
    const config = dense.config.parse({ units: OUT, optimizer: { kind: 'sgd', lr: 1, momentum: 0 } });
    const t = dense.init!({ config, inFeatures: IN, outFeatures: OUT, rng: createRng('dense-init') });
    t.b = randomArray(OUT, 'bias');
    const x = randomArray(ROWS * IN, 'x');
    const { y, stash } = await dense.forward({ k, config, inFeatures: IN, outFeatures: OUT }, t, { shape: [ROWS, IN], data: x });
    assert.equal(y.shape, [ROWS, OUT]);
    assert.equal(stash!.length, 2);
    assert.is(stash![1], t.W, 'no staleness: the forward used (and stashed) W itself');
    const want = reference.forward(x, t.W, t.b, ROWS, IN, OUT);
    want.forEach((w, i) => assert.ok(close(y.data[i], w, FWD.rtol, FWD.atol), `y[${i}] = ${y.data[i]}, want ${w}`));
  });

  test(`layer.dense backward matches numerical gradients [${k.mode}]`, async () => {
    const config = dense.config.parse({ units: OUT, optimizer: { kind: 'sgd', lr: 1, momentum: 0 } });
    const t = dense.init!({ config, inFeatures: IN, outFeatures: OUT, rng: createRng('dense-init-2') });
    t.b = randomArray(OUT, 'bias2');
    const x = randomArray(ROWS * IN, 'x2');
    const r = randomArray(ROWS * OUT, 'r2'); // L = Σ y ⊙ r, so dL/dy = r
    const ctx = { k, config, inFeatures: IN, outFeatures: OUT };
    const { stash } = await dense.forward(ctx, t, { shape: [ROWS, IN], data: x });
    const res = await dense.backward({ ...ctx, step: 1, needDx: true }, t, { shape: [ROWS, OUT], data: r }, stash!);
    const L = (xx: ArrayLike<number>, W: ArrayLike<number>, b: ArrayLike<number>) =>
      reference.forward(Float32Array.from(xx), Float32Array.from(W), Float32Array.from(b), ROWS, IN, OUT).reduce((s, y, i) => s + y * r[i], 0);
    // The reference takes float32 inputs; for the finite differences evaluate in float64 directly.
    const L64 = (xx: Float64Array, W: Float64Array, b: Float64Array) => {
      let s = 0;
      for (let row = 0; row < ROWS; row++)
        for (let c = 0; c < OUT; c++) {
          let y = b[c];
          for (let i = 0; i < IN; i++) y += xx[row * IN + i] * W[i * OUT + c];
          s += y * r[row * OUT + c];
        }
      return s;
    };
    assert.ok(Math.abs(L(x, t.W, t.b) - L64(Float64Array.from(x), Float64Array.from(t.W), Float64Array.from(t.b))) < 1e-4, 'float64 loss agrees with the reference');
    const W64 = Float64Array.from(t.W);
    const b64 = Float64Array.from(t.b);
    const x64 = Float64Array.from(x);
    for (const i of probeIndices(x.length, 20, 'px')) {
      const num = numericalGrad((v) => L64(v, W64, b64), x64, i);
      assert.ok(close(res.dx!.data[i], num, GRAD.rtol, GRAD.atol), `dx[${i}] = ${res.dx!.data[i]}, numerical ${num}`);
    }
    for (const i of probeIndices(t.W.length, 21, 'pw')) {
      const num = numericalGrad((v) => L64(x64, v, b64), W64, i);
      const got = t.W[i] - res.tensors!.W[i]; // SGD lr=1: new = old − grad
      assert.ok(close(got, num, GRAD.rtol, GRAD.atol), `dW[${i}] = ${got}, numerical ${num}`);
    }
    for (let i = 0; i < OUT; i++) {
      const num = numericalGrad((v) => L64(x64, W64, v), b64, i);
      const got = t.b[i] - res.tensors!.b[i];
      assert.ok(close(got, num, GRAD.rtol, GRAD.atol), `db[${i}] = ${got}, numerical ${num}`);
    }
  });

  test(`layer.dense with Adam moves every weight and keeps its slots [${k.mode}]`, async () => {
    const config = dense.config.parse({ units: OUT });
    const t = dense.init!({ config, inFeatures: IN, outFeatures: OUT, rng: createRng('adam') });
    assert.ok(t.W_m && t.W_v && t.b_m && t.b_v, 'adam slots present');
    const ctx = { k, config, inFeatures: IN, outFeatures: OUT };
    const x = randomArray(ROWS * IN, 'x3');
    const { stash } = await dense.forward(ctx, t, { shape: [ROWS, IN], data: x });
    const res = await dense.backward({ ...ctx, step: 1, needDx: false }, t, { shape: [ROWS, OUT], data: randomArray(ROWS * OUT, 'r3') }, stash!);
    assert.is(res.dx, undefined, 'no dx when not needed');
    // Adam's first step moves each weight by about lr (sign of its gradient).
    for (let i = 0; i < t.W.length; i++) assert.ok(Math.abs(Math.abs(t.W[i] - res.tensors!.W[i]) - 0.001) < 1e-4, `W[${i}] moved by lr`);
  });
}

for (const k of kernelsList) {
  test(`layer.dense over the last axis of a rank-3 input: the bits of the rank-2 product of its rows, leading dims kept [${k.mode}]`, async () => {
    const config = dense.config.parse({ units: OUT, optimizer: { kind: 'sgd', lr: 1, momentum: 0 } });
    const t = dense.init!({ config, inFeatures: IN, outFeatures: OUT, rng: createRng('dense-3d') });
    t.b = randomArray(OUT, 'bias3d');
    const ctx = { k, config, inFeatures: IN, outFeatures: OUT };
    const [B, T] = [2, 3]; // 6 rows
    const x = randomArray(B * T * IN, 'x3d');
    const dy = randomArray(B * T * OUT, 'dy3d');
    const three = await dense.forward(ctx, t, { shape: [B, T, IN], data: x });
    const two = await dense.forward(ctx, t, { shape: [B * T, IN], data: x });
    assert.equal(three.y.shape, [B, T, OUT]);
    assert.equal(two.y.shape, [B * T, OUT]);
    assert.equal(Array.from(three.y.data), Array.from(two.y.data));
    const back3 = await dense.backward({ ...ctx, step: 1, needDx: true }, t, { shape: [B, T, OUT], data: dy }, three.stash!);
    const back2 = await dense.backward({ ...ctx, step: 1, needDx: true }, t, { shape: [B * T, OUT], data: dy }, two.stash!);
    assert.equal(back3.dx!.shape, [B, T, IN]);
    assert.equal(Array.from(back3.dx!.data), Array.from(back2.dx!.data));
    assert.equal(Array.from(back3.tensors!.W), Array.from(back2.tensors!.W));
    assert.equal(Array.from(back3.tensors!.b), Array.from(back2.tensors!.b));
    // and the rank-2 product is the float64 reference's (the gradients are checked above)
    reference.forward(x, t.W, t.b, B * T, IN, OUT).forEach((w, i) => assert.ok(close(three.y.data[i], w, FWD.rtol, FWD.atol), `y[${i}]`));
  });
}

test('staleness: the forward runs with W predicted `staleness` Adam steps ahead; the backward computes dx with that W, and updates the current W', async () => {
  const k = kernelsList[0];
  const config = dense.config.parse({ units: OUT });
  const t0 = dense.init!({ config, inFeatures: IN, outFeatures: OUT, rng: createRng('stale') });
  // Non-zero Adam moments, as after some updates.
  const t: Record<string, Float32Array> = { ...t0, W_m: randomArray(t0.W.length, 'm'), W_v: randomArray(t0.W.length, 'v').map(Math.abs), b_m: randomArray(OUT, 'bm'), b_v: randomArray(OUT, 'bv').map(Math.abs) };
  const x = randomArray(ROWS * IN, 'xs');
  const ctx = { k, config, inFeatures: IN, outFeatures: OUT };
  const staleness = 3;
  const { y, stash } = await dense.forward({ ...ctx, staleness }, t, { shape: [ROWS, IN], data: x });
  const lr = 0.001;
  const eps = 1e-8;
  const predict = (p: Float32Array, m: Float32Array, v: Float32Array) => Float32Array.from(p, (w, i) => w - (staleness * lr * m[i]) / (Math.sqrt(v[i]) + eps));
  const W = predict(t.W, t.W_m, t.W_v);
  const b = predict(t.b, t.b_m, t.b_v);
  const want = reference.forward(x, W, b, ROWS, IN, OUT);
  want.forEach((w, i) => assert.ok(close(y.data[i], w, FWD.rtol, FWD.atol), `y[${i}] = ${y.data[i]}, want ${w} (predicted weights)`));
  assert.ok(stash![1] !== t.W && close(stash![1][5], W[5], 1e-6, 1e-7), 'the predicted W is stashed');
  // dx = dy · Wᵀ with the stashed W; the update starts from the current W.
  const dy = randomArray(ROWS * OUT, 'dys');
  const res = await dense.backward({ ...ctx, step: 2, needDx: true }, t, { shape: [ROWS, OUT], data: dy }, stash!);
  for (const [r, i] of [[0, 0], [ROWS - 1, IN - 1], [1, 4]]) {
    let want = 0;
    for (let c = 0; c < OUT; c++) want += dy[r * OUT + c] * W[i * OUT + c];
    assert.ok(close(res.dx!.data[r * IN + i], want, FWD.rtol, FWD.atol), `dx[${r},${i}] uses the stashed W`);
  }
  const moved = Math.abs(res.tensors!.W[0] - t.W[0]);
  assert.ok(moved < 0.01, `the update moves the current W by about lr (${moved}), not from the predicted one`);
  const { stash: plain } = await dense.forward({ ...ctx, staleness: 0 }, t, { shape: [ROWS, IN], data: x });
  assert.is(plain![1], t.W, 'staleness 0: W itself, no copy');
});

test('layer.dense init is seeded: same seed, same weights', () => {
  const config = dense.config.parse({ units: 64 });
  const a = dense.init!({ config, inFeatures: 256, outFeatures: 64, rng: createRng('s') });
  const b = dense.init!({ config, inFeatures: 256, outFeatures: 64, rng: createRng('s') });
  const c = dense.init!({ config, inFeatures: 256, outFeatures: 64, rng: createRng('other') });
  assert.equal(a.W, b.W);
  assert.not.equal(a.W, c.W);
});

// fan_in = fan_out = 256: He's variance 2/fan_in is twice Xavier's 2/(fan_in + fan_out),
// and the sample variance of 65536 normal weights has a relative standard error of
// sqrt(2/65536) ≈ 0.55%, so a 5% tolerance (≈ 9 standard errors) never mistakes one for
// the other (they are 100% apart) nor fails by chance.
const FAN = 256;
const VAR_RTOL = 0.05;

/** Sample variance of the initial weights, and their mean (which must be ≈ 0). */
function weightStats(init: 'he' | 'xavier'): { mean: number; variance: number } {
  const config = dense.config.parse({ units: FAN, init });
  const { W } = dense.init!({ config, inFeatures: FAN, outFeatures: FAN, rng: createRng(`var-${init}`) });
  assert.is(W.length, FAN * FAN);
  const mean = W.reduce((s, w) => s + w, 0) / W.length;
  const variance = W.reduce((s, w) => s + (w - mean) ** 2, 0) / (W.length - 1);
  return { mean, variance };
}

for (const [init, want, other] of [
  ['he', 2 / FAN, 2 / (FAN + FAN)],
  ['xavier', 2 / (FAN + FAN), 2 / FAN],
] as const) {
  test(`layer.dense ${init} init: weight variance is ${init === 'he' ? '2/fan_in' : '2/(fan_in + fan_out)'}`, () => {
    const { mean, variance } = weightStats(init);
    // mean: standard error sqrt(var/n) ≈ 3.5e-4 here; 5 of them
    assert.ok(Math.abs(mean) < 5 * Math.sqrt(want / (FAN * FAN)), `${init} mean ${mean}`);
    assert.ok(Math.abs(variance / want - 1) < VAR_RTOL, `${init} variance ${variance}, want ${want} ± ${VAR_RTOL * 100}%`);
    assert.ok(Math.abs(variance / other - 1) > 0.4, `${init} variance ${variance} is indistinguishable from ${other}`);
  });
}

test('layer.dense config is validated, and the error says what is wrong', () => {
  /** Asserts parse throws a validation error whose first issue is at `path`, with message matching `re`. */
  const rejects = (input: unknown, path: string, re: RegExp) =>
    assert.throws(
      () => dense.config.parse(input),
      (e: unknown) => {
        const issue = (e as { issues?: { path: PropertyKey[]; message: string }[] }).issues?.[0];
        return issue !== undefined && issue.path.join('.') === path && re.test(issue.message);
      },
      `${JSON.stringify(input)} should be refused at "${path}" with ${re}`,
    );
  rejects({ units: 0 }, 'units', />\s*0/);
  rejects({ units: 3, optimizer: { kind: 'rmsprop' } }, 'optimizer.kind', /'sgd' \| 'adam'/);
});

test.run();
