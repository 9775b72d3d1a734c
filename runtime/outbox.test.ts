import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Outbox } from './outbox.js';
import { initialSchedule } from './schedule.js';

const t = (n: number) => ({ shape: [1, 1], data: Float32Array.of(n) });

test('trim forgets what the receiver covers, per receiver and port; take empties in seq order', () => {
  const o = new Outbox([
    { to: 2, kind: 'fwd', seq: 1, tensor: t(1) },
    { to: 2, kind: 'fwd', seq: 0, tensor: t(0) },
    { to: 0, kind: 'bwd', seq: 0, tensor: t(9) },
    { to: 2, kind: 'end', seq: 2 },
  ]);
  assert.is(o.size, 4);
  o.trim(2, { ...initialSchedule(), fwdNext: 1, bwdNext: 5 }); // covers fwd 0 only (bwd 5 is another port, another receiver)
  assert.equal(o.snapshot().entries.map((e) => `${e.to}/${e.kind}/${e.seq}`).sort(), ['0/bwd/0', '2/end/2', '2/fwd/1']);
  o.trim(2, { ...initialSchedule(), fwdNext: 2, endAt: 2 });
  assert.equal(o.snapshot().entries.map((e) => `${e.to}/${e.kind}/${e.seq}`), ['0/bwd/0']);
  o.add({ to: 3, kind: 'fwd', seq: 7, tensor: t(7) });
  o.add({ to: 3, kind: 'fwd', seq: 6, tensor: t(6) });
  assert.equal(o.take(3).map((e) => e.seq), [6, 7]);
  assert.equal(o.take().map((e) => e.to), [0]);
  assert.is(o.size, 0);
});

test('covered by a commit in flight: left out of snapshots (which wait for it), forgotten once committed, held again if it fails', async () => {
  const o = new Outbox([
    { to: 1, kind: 'fwd', seq: 0, tensor: t(0) },
    { to: 1, kind: 'fwd', seq: 1, tensor: t(1) },
  ]);
  let settle!: { resolve: () => void; reject: (e: unknown) => void };
  const commit = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  o.covering(1, { ...initialSchedule(), fwdNext: 1 }, commit);
  const snap = o.snapshot();
  assert.equal(snap.entries.map((e) => e.seq), [1]);
  assert.equal(snap.after, [commit]);
  assert.is(o.size, 2, 'still held until committed');
  settle.resolve();
  await commit;
  assert.is(o.size, 1);
  assert.equal(o.snapshot(), { entries: [o.snapshot().entries[0]], after: [] });

  let fail!: (e: unknown) => void;
  const failing = new Promise<void>((_r, reject) => (fail = reject));
  o.covering(1, { ...initialSchedule(), fwdNext: 5 }, failing);
  assert.equal(o.snapshot().entries, []);
  fail(new Error('CAS refused'));
  await failing.catch(() => {});
  assert.equal(o.snapshot().entries.map((e) => e.seq), [1], 'a failed commit covers nothing');
  assert.equal(o.take().map((e) => e.seq), [1]);
});

test('the same output added twice is kept once', () => {
  const o = new Outbox();
  o.add({ to: 1, kind: 'fwd', seq: 3, tensor: t(3) });
  o.add({ to: 1, kind: 'fwd', seq: 3, tensor: t(3) });
  assert.is(o.size, 1);
});

test.run();
