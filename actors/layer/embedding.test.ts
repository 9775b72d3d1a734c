import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createRng } from '../../runtime/rng.js';
import { availableKernels, close, numericalGrad, probeIndices, randomArray } from '../../test/helpers/gradcheck.js';
import { embedding, reference } from './embedding.js';

const VOCAB = 11;
const WIDTH = 5;
const CONTEXT = 6;
const B = 3;
const T = 4; // < CONTEXT: the last positions get no gradient
// Forward is tok + pos, one float32 addition: within 1e-6 relative (+1e-7 abs).
// Gradients within 1% (+1e-5 abs) of float64 central differences (L is linear here).
const FWD = { rtol: 1e-6, atol: 1e-7 };
const GRAD = { rtol: 1e-2, atol: 1e-5 };
const sgd = { vocab: VOCAB, width: WIDTH, context: CONTEXT, optimizer: { kind: 'sgd', lr: 1, momentum: 0 } };

/** Ids with repeats (0 and 10 included), as float32 integers. */
const ids = Float32Array.from({ length: B * T }, (_, i) => [0, 3, 3, 10, 7, 0, 3, 1, 10, 10, 2, 3][i]);

const kernelsList = await availableKernels();

test('layer.embedding init: N(0, 0.02²) tables of vocab×width and context×width, seeded', () => {
  const config = embedding.config.parse({ vocab: 300, width: 64, context: 32 });
  const t = embedding.init!({ config, inFeatures: 1, outFeatures: 64, rng: createRng('e') });
  assert.is(t.tok.length, 300 * 64);
  assert.is(t.pos.length, 32 * 64);
  assert.ok(t.tok_m && t.tok_v && t.pos_m && t.pos_v, 'adam slots');
  // sample std of 19,200 normals: relative standard error ≈ 0.5%; 5% bound
  const std = Math.sqrt(t.tok.reduce((s, v) => s + v * v, 0) / t.tok.length);
  assert.ok(Math.abs(std / 0.02 - 1) < 0.05, `tok std ${std}`);
  assert.equal(embedding.init!({ config, inFeatures: 1, outFeatures: 64, rng: createRng('e') }).pos, t.pos);
  assert.is(embedding.outFeatures!(config, 1), 64);
});

for (const k of kernelsList) {
  test(`layer.embedding forward matches the reference; backward matches numerical gradients of tok and pos [${k.mode}]`, async () => {
    const config = embedding.config.parse(sgd);
    const t = embedding.init!({ config, inFeatures: T, outFeatures: WIDTH, rng: createRng('emb') });
    const ctx = { k, config, inFeatures: T, outFeatures: WIDTH };
    const { y, stash } = await embedding.forward(ctx, t, { shape: [B, T], data: ids });
    assert.equal(y.shape, [B, T, WIDTH]);
    assert.equal(stash, [ids], 'only the ids are stashed');
    const want = reference.forward(ids, t.tok, t.pos, B, T, WIDTH);
    want.forEach((w, i) => assert.ok(close(y.data[i], w, FWD.rtol, FWD.atol), `y[${i}] = ${y.data[i]}, want ${w}`));

    const r = randomArray(B * T * WIDTH, 'r'); // L = Σ y ⊙ r
    const res = await embedding.backward({ ...ctx, step: 1, needDx: false }, t, { shape: [B, T, WIDTH], data: r }, stash!);
    assert.is(res.dx, undefined);
    const L = (tok: ArrayLike<number>, pos: ArrayLike<number>) => reference.forward(ids, tok, pos, B, T, WIDTH).reduce((s, v, i) => s + v * r[i], 0);
    const tok64 = Float64Array.from(t.tok);
    const pos64 = Float64Array.from(t.pos);
    // every row of tok: rows used once, several times (3, 10), and never (4, 5, …: gradient 0)
    for (let i = 0; i < t.tok.length; i++) {
      const num = numericalGrad((v) => L(v, pos64), tok64, i);
      const got = t.tok[i] - res.tensors!.tok[i]; // SGD lr=1: new = old − grad
      assert.ok(close(got, num, GRAD.rtol, GRAD.atol), `dtok[${i}] = ${got}, numerical ${num}`);
    }
    for (const i of probeIndices(t.pos.length, t.pos.length, 'pp')) {
      const num = numericalGrad((v) => L(tok64, v), pos64, i);
      const got = t.pos[i] - res.tensors!.pos[i];
      assert.ok(close(got, num, GRAD.rtol, GRAD.atol), `dpos[${i}] = ${got}, numerical ${num}`);
    }
  });
}

test('layer.embedding refuses bad ids, too long a sequence, a wrong rank, and a backward asking for dx', async () => {
  const [k] = kernelsList;
  const config = embedding.config.parse(sgd);
  const t = embedding.init!({ config, inFeatures: T, outFeatures: WIDTH, rng: createRng('bad') });
  const ctx = { k, config, inFeatures: T, outFeatures: WIDTH };
  const fwd = (shape: number[], data: Float32Array) => embedding.forward(ctx, t, { shape, data });
  const rejects = async (p: Promise<unknown>, re: RegExp) => {
    const err = await p.then(() => undefined, (e: Error) => e);
    assert.ok(err instanceof Error && re.test(err.message), `expected ${re}, got ${err}`);
  };
  await rejects(fwd([1, 3], Float32Array.of(1, 11, 2)), /token id 11 at \[0, 1\] is not an integer in \[0, 11\)/);
  await rejects(fwd([2, 2], Float32Array.of(1, 2, 3, 1.5)), /token id 1\.5 at \[1, 1\]/);
  await rejects(fwd([1, 2], Float32Array.of(-1, 2)), /token id -1 at \[0, 0\]/);
  await rejects(fwd([1, CONTEXT + 1], new Float32Array(CONTEXT + 1)), /7 time steps; the context is 1\.\.6/);
  await rejects(fwd([2, 2, 1], new Float32Array(4)), /must be \[batch, time\] token ids/);
  const { stash } = await fwd([1, 2], Float32Array.of(1, 2));
  await rejects(embedding.backward({ ...ctx, step: 1, needDx: true }, t, { shape: [1, 2, WIDTH], data: new Float32Array(2 * WIDTH) }, stash!), /must be the first VNode/);
});

test.run();
