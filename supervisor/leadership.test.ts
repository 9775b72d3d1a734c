/**
 * The supervisors' lease (supervisor/leadership.ts) on a real nats-server: one leader at
 * a time, a standby takes over only after the leader's silence, a deposed leader stops
 * acting before its successor starts and finds its renewal refused, and what a deposed
 * leader writes into the ownership bucket is refused by readers.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setup, cleanup, type Fixture } from '../test/helpers/nats.js';
import { assignOwner, openBuckets, termRegression, type Buckets } from '../runtime/cluster-state.js';
import { createLeadership } from './leadership.js';
import { SupervisorKey } from '../runtime/protocol.js';

let f: Fixture;
let b: Buckets;
test.before(async () => {
  f = await setup();
  b = await openBuckets(f.nc);
});
test.after(async () => cleanup(f.ns, f.nc));
test.before.each(async () => {
  await b.members.purge(SupervisorKey.lease).catch(() => {});
});

/** A clock the test moves by hand, so no assertion depends on how fast the machine is. */
const clock = () => {
  let t = 0;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
};

test('one leader at a time; a standby takes over only after leaseMs of silence, under the next term', async () => {
  const c = clock();
  const a = createLeadership({ kv: b.members, name: 'a', leaseMs: 1000, now: c.now });
  const s = createLeadership({ kv: b.members, name: 's', leaseMs: 1000, now: c.now });
  assert.is(await a.check(), 'leader');
  assert.is(a.term, 1);
  assert.is(await s.check(), 'standby');
  assert.is(s.holder, 'a');
  // The leader renews every leaseMs/4: the standby sees the revision move and keeps waiting.
  for (let i = 0; i < 8; i++) {
    c.advance(300);
    assert.is(await a.check(), 'leader');
    assert.is(await s.check(), 'standby', `renewal ${i} keeps the standby waiting`);
  }
  // The leader goes silent (killed, stalled): it stops acting before the standby starts.
  c.advance(800);
  assert.not.ok(a.valid(), 'past 3/4 of its lease the old leader acts no more');
  assert.is(await s.check(), 'standby', 'silence shorter than the lease: still standing by');
  c.advance(300);
  assert.is(await s.check(), 'leader');
  assert.is(s.term, 2);
  assert.ok(s.valid());
  // The old leader wakes: its renewal is refused, it stands by.
  assert.is(await a.check(), 'standby');
  assert.not.ok(a.valid());
  assert.is(a.holder, 's');
});

test('a resigned lease is taken at once; two standbys racing for a silent lease: exactly one wins', async () => {
  const c = clock();
  const a = createLeadership({ kv: b.members, name: 'a', leaseMs: 1000, now: c.now });
  const s1 = createLeadership({ kv: b.members, name: 's1', leaseMs: 1000, now: c.now });
  const s2 = createLeadership({ kv: b.members, name: 's2', leaseMs: 1000, now: c.now });
  await a.check();
  await s1.check();
  await s2.check();
  await a.resign();
  assert.not.ok(a.valid());
  const [r1, r2] = await Promise.all([s1.check(), s2.check()]);
  assert.equal([r1, r2].sort(), ['leader', 'standby'], 'exactly one takes a resigned lease');
  const winner = r1 === 'leader' ? s1 : s2;
  const loser = r1 === 'leader' ? s2 : s1;
  assert.is(winner.term, 2);
  await loser.check();
  c.advance(1100);
  await winner.check(); // renews (it is past leaseMs/4)
  assert.is(await loser.check(), 'standby', 'a renewed lease is not silent');
});

test('restarted under its name, a supervisor takes its own lease at once; a standby under another name waits', async () => {
  const c = clock();
  const before = createLeadership({ kv: b.members, name: 'supervisor', leaseMs: 1000, now: c.now });
  assert.is(await before.check(), 'leader');
  const other = createLeadership({ kv: b.members, name: 'supervisor-2', leaseMs: 1000, now: c.now });
  assert.is(await other.check(), 'standby');
  const restarted = createLeadership({ kv: b.members, name: 'supervisor', leaseMs: 1000, now: c.now });
  assert.is(await restarted.check(), 'leader', 'its previous incarnation held it');
  assert.is(restarted.term, 2);
  c.advance(300);
  assert.is(await before.check(), 'standby', 'the old incarnation, if it still ran, is deposed at its next renewal');
});

test('a lease record that is junk is taken over like a silent one', async () => {
  const c = clock();
  await b.members.put(SupervisorKey.lease, 'not a lease');
  const s = createLeadership({ kv: b.members, name: 's', leaseMs: 1000, now: c.now });
  assert.is(await s.check(), 'standby');
  c.advance(1100);
  assert.is(await s.check(), 'leader');
});

test('a deposed leader cannot overwrite its successor: assignOwner refuses, readers refuse a lower term', async () => {
  const first = await assignOwner(b.owners, 'dep', 0, 'pnode-1', { term: 1 });
  assert.is(first.term, 1);
  const second = await assignOwner(b.owners, 'dep', 0, 'pnode-2', { term: 2 });
  assert.is(second.epoch, first.epoch + 1);
  try {
    await assignOwner(b.owners, 'dep', 0, 'pnode-3', { term: 1 });
    assert.unreachable('a lower term must not write');
  } catch (err) {
    assert.match(String(err), /term 2, this supervisor's is 1: deposed/);
  }
  assert.is(termRegression(second, { ...second, pnode: 'pnode-3', term: 1, epoch: 9 })?.includes('deposed'), true);
  assert.is(termRegression(second, { ...second, term: 2 }), null);
  assert.is(termRegression(undefined, { pnode: 'p', epoch: 1, assignedAt: '' }), null, 'records from before leases have term 0');
});

test.run();
