import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createKernels } from '../../runtime/kernels/index.js';
import { createRng } from '../../runtime/rng.js';
import { availableKernels, close, numericalGrad, randomArray } from '../../test/helpers/gradcheck.js';
import { attention, reference, splitColumns, stackColumns } from './attention.js';

const B = 2;
const T = 4;
const C = 6;
const H = 2; // D = 3
const NAMES = ['Wq', 'Wk', 'Wv', 'Wo', 'bq', 'bk', 'bv', 'bo'] as const;
// Float32 kernels against a float64 reference: forward within 1e-4 relative (+1e-5 abs);
// gradients within 2% relative (+1e-4 abs) of float64 central differences (as layer.dense).
const FWD = { rtol: 1e-4, atol: 1e-5 };
const GRAD = { rtol: 2e-2, atol: 1e-4 };
const sgd = { heads: H, optimizer: { kind: 'sgd', lr: 1, momentum: 0 } };

/** Parameters with non-zero biases (init leaves them 0, which would hide a bias bug). */
function params(seed: string): Record<string, Float32Array> {
  const config = attention.config.parse(sgd);
  const t = attention.init!({ config, inFeatures: C, outFeatures: C, rng: createRng(seed) });
  for (const b of ['bq', 'bk', 'bv', 'bo']) t[b] = randomArray(C, `${seed}-${b}`, 0.5);
  return t;
}

const kernelsList = await availableKernels();

test('stackColumns and splitColumns are inverses', () => {
  const a = Float32Array.of(1, 2, 3, 4);
  const b = Float32Array.of(5, 6, 7, 8);
  const s = stackColumns([a, b], 2, 2);
  assert.equal(Array.from(s), [1, 2, 5, 6, 3, 4, 7, 8]);
  assert.equal(splitColumns(s, 2, 2, 2).map((m) => Array.from(m)), [Array.from(a), Array.from(b)]);
});

test('layer.attention init: xavier-normal C×C weights (std √(1/C)), zero biases, Adam slots; width must divide into heads', () => {
  const config = attention.config.parse({ heads: 4 });
  const t = attention.init!({ config, inFeatures: 128, outFeatures: 128, rng: createRng('init') });
  for (const w of ['Wq', 'Wk', 'Wv', 'Wo']) {
    assert.is(t[w].length, 128 * 128);
    // 16384 samples: relative standard error of the variance ≈ 1.1%; 6% bound
    const variance = t[w].reduce((s, v) => s + v * v, 0) / t[w].length;
    assert.ok(Math.abs(variance * 128 - 1) < 0.06, `${w} variance ${variance}, want 1/128`);
    assert.ok(t[`${w}_m`] && t[`${w}_v`], `${w} slots`);
  }
  for (const b of ['bq', 'bk', 'bv', 'bo']) assert.ok(t[b].length === 128 && t[b].every((v) => v === 0), b);
  assert.is(attention.outFeatures!(config, 128), 128);
  assert.throws(() => attention.outFeatures!(config, 130), /width 130 is not divisible by heads 4/);
  assert.equal(attention.parameters, NAMES);
});

for (const k of kernelsList) {
  test(`layer.attention forward matches the reference [${k.mode}]`, async () => {
    const config = attention.config.parse(sgd);
    const t = params('fwd');
    const x = randomArray(B * T * C, 'x', 2);
    const { y, stash } = await attention.forward({ k, config, inFeatures: C, outFeatures: C }, t, { shape: [B, T, C], data: x });
    assert.equal(y.shape, [B, T, C]);
    assert.is(stash!.length, 4, 'x, Q|K|V, [Wq|Wk|Wv], Wo');
    assert.is(stash![3], t.Wo, 'no staleness: Wo itself is stashed');
    const want = reference.forward(x, t, B, T, C, H);
    want.forEach((w, i) => assert.ok(close(y.data[i], w, FWD.rtol, FWD.atol), `y[${i}] = ${y.data[i]}, want ${w}`));
  });

  test(`layer.attention backward matches numerical gradients: dx and all 8 parameters [${k.mode}]`, async () => {
    const config = attention.config.parse(sgd);
    const t = params('bwd');
    const x = randomArray(B * T * C, 'x2', 2);
    const r = randomArray(B * T * C, 'r2'); // L = Σ y ⊙ r
    const ctx = { k, config, inFeatures: C, outFeatures: C };
    const { stash } = await attention.forward(ctx, t, { shape: [B, T, C], data: x });
    const res = await attention.backward({ ...ctx, step: 1, needDx: true }, t, { shape: [B, T, C], data: r }, stash!);
    assert.equal(res.dx!.shape, [B, T, C]);
    const p64: Record<string, Float64Array> = Object.fromEntries(NAMES.map((n) => [n, Float64Array.from(t[n])]));
    const x64 = Float64Array.from(x);
    const L = (xx: ArrayLike<number>, p: Record<string, ArrayLike<number>>) => reference.forward(xx, p, B, T, C, H).reduce((s, y, i) => s + y * r[i], 0);
    for (let i = 0; i < x.length; i++) {
      const num = numericalGrad((v) => L(v, p64), x64, i);
      assert.ok(close(res.dx!.data[i], num, GRAD.rtol, GRAD.atol), `dx[${i}] = ${res.dx!.data[i]}, numerical ${num}`);
    }
    for (const name of NAMES) {
      for (let i = 0; i < t[name].length; i++) {
        const num = numericalGrad((v) => L(x64, { ...p64, [name]: v }), p64[name], i);
        const got = t[name][i] - res.tensors![name][i]; // SGD lr=1: new = old − grad
        assert.ok(close(got, num, GRAD.rtol, GRAD.atol), `d${name}[${i}] = ${got}, numerical ${num}`);
      }
    }
    const noDx = await attention.backward({ ...ctx, step: 1, needDx: false }, t, { shape: [B, T, C], data: r }, stash!);
    assert.is(noDx.dx, undefined, 'no dx when not needed');
  });

  test(`layer.attention is causal: a later token changes no earlier output [${k.mode}]`, async () => {
    const config = attention.config.parse(sgd);
    const t = params('causal');
    const ctx = { k, config, inFeatures: C, outFeatures: C };
    const x = randomArray(B * T * C, 'xc', 2);
    const x2 = x.slice();
    for (let c = 0; c < C; c++) x2[(0 * T + T - 1) * C + c] += 1; // the last step of sequence 0
    const a = (await attention.forward(ctx, t, { shape: [B, T, C], data: x })).y.data;
    const b = (await attention.forward(ctx, t, { shape: [B, T, C], data: x2 })).y.data;
    assert.equal(Array.from(a.subarray(0, (T - 1) * C)), Array.from(b.subarray(0, (T - 1) * C)), 'earlier steps: same bits');
    assert.not.equal(Array.from(a.subarray((T - 1) * C, T * C)), Array.from(b.subarray((T - 1) * C, T * C)), 'the changed step changes');
    assert.equal(Array.from(a.subarray(T * C)), Array.from(b.subarray(T * C)), 'the other sequence: same bits');
  });
}

test('staleness: the forward runs with the predicted parameters and stashes them; dx uses the stashed weights, the update the current ones', async () => {
  const k = await createKernels('js');
  const config = attention.config.parse({ heads: H });
  const t0 = attention.init!({ config, inFeatures: C, outFeatures: C, rng: createRng('stale') });
  // Non-zero Adam moments, as after some updates.
  const t: Record<string, Float32Array> = { ...t0 };
  for (const n of NAMES) {
    t[`${n}_m`] = randomArray(t[n].length, `${n}m`);
    t[`${n}_v`] = randomArray(t[n].length, `${n}v`).map(Math.abs);
  }
  const ctx = { k, config, inFeatures: C, outFeatures: C };
  const x = randomArray(B * T * C, 'xs', 2);
  const dy = randomArray(B * T * C, 'dys');
  const stale = await attention.forward({ ...ctx, staleness: 3 }, t, { shape: [B, T, C], data: x });
  // the same forward from parameters predicted by hand, at staleness 0
  const predicted: Record<string, Float32Array> = { ...t };
  for (const n of NAMES) predicted[n] = await k.adamPredict(t[n], t[`${n}_m`], t[`${n}_v`], 3 * 0.001, 1e-8);
  const fresh = await attention.forward(ctx, predicted, { shape: [B, T, C], data: x });
  assert.equal(Array.from(stale.y.data), Array.from(fresh.y.data), 'y from the predicted parameters');
  assert.ok(stale.stash![3] !== t.Wo, 'the predicted Wo is stashed');
  const a = await attention.backward({ ...ctx, step: 2, needDx: true }, t, { shape: [B, T, C], data: dy }, stale.stash!);
  const b = await attention.backward({ ...ctx, step: 2, needDx: true }, t, { shape: [B, T, C], data: dy }, fresh.stash!);
  assert.equal(Array.from(a.dx!.data), Array.from(b.dx!.data), 'dx with the stashed (predicted) weights');
  const moved = Math.abs(a.tensors!.Wq[0] - t.Wq[0]);
  assert.ok(moved < 0.01, `the update moves the current Wq by about lr (${moved})`);
});

test('layer.attention refuses a rank-2 input and a width that does not split into heads', async () => {
  const k = await createKernels('js');
  const config = attention.config.parse(sgd);
  const t = params('bad');
  const err = await attention.forward({ k, config, inFeatures: C, outFeatures: C }, t, { shape: [B * T, C], data: new Float32Array(B * T * C) }).then(() => undefined, (e: Error) => e);
  assert.match(String(err), /input must be \[batch, time, 6\], got \[8,6\]/);
  assert.throws(() => attention.init!({ config: attention.config.parse({ heads: 4 }), inFeatures: C, outFeatures: C, rng: createRng('x') }), /width 6 is not divisible by heads 4/);
});

test.run();
