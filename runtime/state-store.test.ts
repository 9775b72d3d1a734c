import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanup, setup } from '../test/helpers/nats.js';
import { openBuckets } from './cluster-state.js';
import { FencedError, StateStore, type StateWrite } from './state-store.js';

// NATS's own default max_payload (1 MiB), not DCNR's 8 MiB: the 4 MiB layer below must be chunked.
const { ns, nc } = await setup({ maxPayload: 1024 * 1024 });
const buckets = await openBuckets(nc);
const store = new StateStore(buckets.state);

const write = (over: Partial<StateWrite> = {}): StateWrite => ({
  generation: 1,
  epoch: 1,
  type: 'layer.dense',
  typeVersion: 1,
  snapshot: { value: 'ready', context: { n: 1 } },
  tensors: {},
  stash: new Map(),
  ...over,
});

test('a 1024×1024 layer (4 MiB, over the 1 MiB max_payload) round-trips bit for bit', async () => {
  const W = new Float32Array(1024 * 1024);
  for (let i = 0; i < W.length; i++) W[i] = Math.sin(i) * 1e3;
  const b = Float32Array.of(1, 2, 3);
  const committed = await store.write('big', 0, null, write({ tensors: { W, b } }));
  assert.ok(committed.meta.tensors.W.chunks > 1, 'W was chunked');
  const read = await store.read('big', 0);
  assert.is(read!.revision, committed.revision);
  const { tensors } = await new StateStore(buckets.state).load(read!.meta);
  assert.is(tensors.W.length, W.length);
  assert.ok(Buffer.compare(Buffer.from(tensors.W.buffer), Buffer.from(W.buffer)) === 0, 'identical bytes');
  assert.equal([...tensors.b], [1, 2, 3]);
});

test('stash arrays round-trip per seq', async () => {
  const stash = new Map([[5, [Float32Array.of(2), Float32Array.of(1, 2)]]]);
  await store.write('st', 0, null, write({ stash }));
  const read = await store.read('st', 0);
  const loaded = await new StateStore(buckets.state).load(read!.meta);
  assert.equal([...loaded.stash.get(5)![1]], [1, 2]);
});

test('compare-and-set: a writer holding an old revision is fenced, the winner is intact', async () => {
  const first = await store.write('cas', 0, null, write({ tensors: { W: Float32Array.of(1) } }));
  const newOwner = new StateStore(buckets.state);
  const seen = await newOwner.read('cas', 0);
  // The new owner's takeover write under epoch 2.
  const taken = await newOwner.write('cas', 0, seen, write({ epoch: 2, tensors: { W: Float32Array.of(2) } }));
  // The old owner still believes `first` is current: its write must fail.
  try {
    await store.write('cas', 0, first, write({ tensors: { W: Float32Array.of(99) } }));
    assert.unreachable('stale write was accepted');
  } catch (err) {
    assert.instance(err, FencedError);
  }
  const now = await store.read('cas', 0);
  assert.is(now!.revision, taken.revision);
  const { tensors } = await newOwner.load(now!.meta);
  assert.equal([...tensors.W], [2]);
});

test('creating a state that exists is fenced (two creators race)', async () => {
  await store.write('race', 0, null, write());
  try {
    await new StateStore(buckets.state).write('race', 0, null, write());
    assert.unreachable('second create accepted');
  } catch (err) {
    assert.instance(err, FencedError);
  }
});

test('unchanged tensors are not rewritten; replaced ones are, and old blobs are purged', async () => {
  const W = Float32Array.of(1, 2);
  const c1 = await store.write('gc', 0, null, write({ tensors: { W, b: Float32Array.of(0) } }));
  const c2 = await store.write('gc', 0, c1, write({ tensors: { W, b: Float32Array.of(1) } }));
  assert.is(c2.meta.tensors.W.key, c1.meta.tensors.W.key, 'W kept its blob');
  assert.is.not(c2.meta.tensors.b.key, c1.meta.tensors.b.key, 'b got a new blob');
  const old = await buckets.state.get(c1.meta.tensors.b.key);
  assert.ok(!old || old.operation !== 'PUT', 'old b blob purged');
});

test('a fenced write forgets the blobs it purged: the same arrays written again are stored again, and load', async () => {
  const first = await store.write('refw', 0, null, write());
  const W = new Float32Array(1000).fill(7);
  await store.write('refw', 0, first, write({ epoch: 2 })); // a newer owner commits in between
  await store.write('refw', 0, first, write({ tensors: { W } })).then(
    () => assert.unreachable('the stale write is fenced'),
    (err) => assert.instance(err, FencedError),
  );
  const now = await store.read('refw', 0);
  const again = await store.write('refw', 0, now, write({ epoch: 2, tensors: { W } }));
  const { tensors } = await new StateStore(buckets.state).load(again.meta);
  assert.is(tensors.W[999], 7, 'the blob exists: it was written again, not taken from the purged one');
});

test('remove deletes meta and blobs', async () => {
  const c = await store.write('rm', 0, null, write({ tensors: { W: Float32Array.of(1) } }));
  await store.remove('rm', 0);
  assert.is(await store.read('rm', 0), null);
  const blob = await buckets.state.get(c.meta.tensors.W.key);
  assert.ok(!blob || blob.operation !== 'PUT');
});

test.after(async () => cleanup(ns, nc));
test('a takeover that read before the old owner committed once more is fenced (it must re-read), not written over it', async () => {
  const first = await store.write('stale-takeover', 0, null, write({ tensors: { W: Float32Array.of(1) } }));
  const newOwner = new StateStore(buckets.state);
  const seen = await newOwner.read('stale-takeover', 0);
  // The old owner (epoch 1) commits one more message after the new owner's read.
  const more = await store.write('stale-takeover', 0, first, write({ tensors: { W: Float32Array.of(1.5) } }));
  try {
    await newOwner.write('stale-takeover', 0, seen, write({ epoch: 2, tensors: { W: Float32Array.of(2) } }));
    assert.unreachable('a takeover from a stale read must fail');
  } catch (err) {
    assert.instance(err, FencedError);
  }
  const now = await store.read('stale-takeover', 0);
  assert.is(now!.revision, more.revision, 'the old owner\'s last commit stands');
});

test('junk over a meta is written over by its owner (CAS on the junk), and reported once', async () => {
  const lines: string[] = [];
  const { rejectOnce } = await import('./records.js');
  const owner = new StateStore(buckets.state, { reject: rejectOnce((l) => lines.push(l)) });
  const first = await owner.write('junk', 0, null, write({ tensors: { W: Float32Array.of(1) } }));
  await buckets.state.put('junk.0.meta', '{not a meta');
  let damaged = '';
  await owner.read('junk', 0).catch((e: Error) => (damaged = e.message));
  assert.match(damaged, /state of junk\.0 is damaged: VNode state meta: not JSON/);
  const next = await owner.write('junk', 0, first, write({ tensors: { W: Float32Array.of(2) } }));
  const read = await owner.read('junk', 0);
  assert.is(read!.revision, next.revision);
  assert.is(lines.filter((l) => l.includes('junk.0.meta')).length, 1);
});

test.run();
