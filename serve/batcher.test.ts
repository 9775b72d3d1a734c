/**
 * The micro-batcher on its own, on a real backend (mnist-mlp trained by `dcnr train`):
 * whole requests per batch up to maxBatch rows, a larger request alone, the window (and
 * idleDispatch: no window for a request that finds the backend idle),
 * deadlines that pass in the queue, and close.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createRng } from '../runtime/rng.js';
import { recording } from '../test/helpers/serve.js';
import { trainDeployment, type TrainedDeployment } from '../test/helpers/trained.js';
import { createBatcher } from './batcher.js';
import { HttpError } from './errors.js';
import { createLocalBackend, type LocalBackend } from './local-backend.js';

let run: TrainedDeployment;
let backend: LocalBackend;
const F = 784;
const rows = (seed: string, n: number) => {
  const rng = createRng(seed);
  return Float32Array.from({ length: n * F }, () => rng.next());
};
const later = () => Date.now() + 30_000;

test.before(async () => {
  run = await trainDeployment('mnist-mlp', ['--steps', '10', '--batch', '16', '--seed', '2']);
  backend = await createLocalBackend({ model: run.model, tensors: run.tensors });
});
test.after(() => run?.remove());

test('whole requests per forward, up to maxBatch rows; a request over maxBatch goes alone; outputs split back in order', async () => {
  const rec = recording(backend);
  const batcher = createBatcher({ backend: rec.backend, windowMs: 50, maxBatch: 8 });
  const sizes = [3, 3, 3, 12, 1, 5];
  const xs = sizes.map((n, i) => rows(`b${i}`, n));
  const results = await Promise.all(xs.map((x, i) => batcher.submit(x, sizes[i], F, later())));
  // every forward holds whole requests, and no more than 8 rows unless it is one request
  const bounds = rec.calls.map((c) => c.input.shape[0]);
  assert.is(bounds.reduce((a, b) => a + b, 0), 27);
  for (const n of bounds) assert.ok(n <= 8 || n === 12, `a forward of ${n} rows`);
  assert.ok(bounds.includes(12), 'the 12-row request went alone');
  // each request's rows stand together in one forward, and its answer is those rows of the output
  const locate = (x: Float32Array) => {
    for (const c of rec.calls) for (let r = 0; r < c.input.shape[0]; r++) if (x.every((v, k) => v === c.input.data[r * F + k])) return { c, r };
  };
  for (const [i, r] of results.entries()) {
    assert.equal(r.output.shape, [sizes[i], 10]);
    const at = locate(xs[i]);
    assert.ok(at, `request ${i} found in a forward`);
    assert.equal(r.output.data, at!.c.output!.data.subarray(at!.r * 10, (at!.r + sizes[i]) * 10), `request ${i}: its rows of the output`);
  }
  batcher.close();
});

test('maxBatch rows go at once, without waiting the window', async () => {
  const rec = recording(backend);
  const batcher = createBatcher({ backend: rec.backend, windowMs: 60_000, maxBatch: 4 });
  const r = await Promise.all([0, 1, 2, 3].map((i) => batcher.submit(rows(`full${i}`, 1), 1, F, later())));
  assert.is(r.length, 4);
  assert.is(rec.calls.length, 1);
  batcher.close();
});

test('idleDispatch: a request that finds no forward running goes at once; those arriving during a forward share the next', async () => {
  // A forward that yields (as the VNodes' does, on the network) until released.
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const slow = { ...backend, forward: async (...args: Parameters<typeof backend.forward>) => (await held, backend.forward(...args)) };
  const rec = recording(slow);
  const batcher = createBatcher({ backend: rec.backend, windowMs: 600_000, maxBatch: 5, idleDispatch: true });
  const first = batcher.submit(rows('idle0', 1), 1, F, later());
  const rest = [1, 2, 3, 4, 5].map((i) => batcher.submit(rows(`idle${i}`, 1), 1, F, later()));
  release();
  await Promise.all([first, ...rest]);
  // The first did not wait the (10-minute) window; the five that came during its forward went together when they filled a batch.
  assert.equal(rec.calls.map((c) => c.input.shape[0]), [1, 5]);
  batcher.close();
});

test('a request whose deadline passes in the queue gets 503; close fails what waits', async () => {
  const batcher = createBatcher({ backend, windowMs: 100, maxBatch: 64 });
  const late = batcher.submit(rows('late', 1), 1, F, Date.now() + 10).catch((e) => e);
  const fine = batcher.submit(rows('fine', 1), 1, F, later());
  const err = await late;
  assert.instance(err, HttpError);
  assert.is(err.status, 503);
  assert.is(err.message, 'the request timed out waiting for a batch');
  assert.equal((await fine).output.shape, [1, 10]);
  const waiting = batcher.submit(rows('w', 1), 1, F, later()).catch((e) => e);
  assert.is(batcher.queuedRows, 1);
  batcher.close();
  assert.is((await waiting).message, 'the server is shutting down');
  assert.is(((await batcher.submit(rows('x', 1), 1, F, later()).catch((e) => e)) as HttpError).status, 503);
});

test('bad options and a submit whose values are not rows x features are refused', async () => {
  assert.throws(() => createBatcher({ backend, maxBatch: 0 }), /maxBatch must be an integer >= 1, got 0/);
  assert.throws(() => createBatcher({ backend, windowMs: -1 }), /windowMs must be >= 0/);
  const batcher = createBatcher({ backend });
  const err = await batcher.submit(new Float32Array(10), 1, F, later()).catch((e) => e);
  assert.match(err.message, /10 values are not 1 rows of 784/);
  batcher.close();
});

test.run();
