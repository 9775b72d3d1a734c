import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createActor } from 'xstate';
import type { MessageKind, Port } from './protocol.js';
import { PORT_OF_KIND } from './protocol.js';
import type { Role } from './schedule.js';
import { awaitedInput, vnodeMachine } from './vnode-machine.js';

const EVERY_MESSAGE = { every: 1, ms: 1000 };
const start = (role: Role = 'layer', depth = 1, checkpoint = EVERY_MESSAGE) => {
  const a = createActor(vnodeMachine, { input: { role, depth, checkpoint } }).start();
  a.send({ type: 'ACTIVATED', epoch: 1 });
  return a;
};
type A = ReturnType<typeof start>;
const message = (kind: MessageKind, seq: number, port: Port = PORT_OF_KIND[kind], fits = true) => ({ type: 'MESSAGE' as const, port, kind, seq, fits });
/** Apply one message the way the host does when the machine accepts it. */
const apply = (a: A, kind: MessageKind, seq: number) => {
  a.send(message(kind, seq));
  assert.is(a.getSnapshot().value, 'processing', `${kind}${seq} accepted`);
  a.send({ type: 'COMPUTED' });
  assert.is(a.getSnapshot().value, 'publishing');
  a.send({ type: 'PUBLISHED', sinceCheckpointMs: 0 });
  if (a.getSnapshot().value === 'checkpointing') a.send({ type: 'CAPTURED' });
};

test('lifecycle: activating → waiting → processing → publishing → checkpointing → waiting', () => {
  const a = createActor(vnodeMachine, { input: { role: 'layer', depth: 1, checkpoint: EVERY_MESSAGE } }).start();
  assert.is(a.getSnapshot().value, 'activating');
  assert.is(awaitedInput(a.getSnapshot()), null, 'awaits nothing before activation');
  a.send({ type: 'ACTIVATED', epoch: 3 });
  assert.is(a.getSnapshot().value, 'waiting');
  assert.equal(awaitedInput(a.getSnapshot()), { port: 'fwd', seq: 0 });
  a.send(message('fwd', 0));
  assert.is(a.getSnapshot().value, 'processing');
  assert.is(awaitedInput(a.getSnapshot()), null, 'awaits nothing while busy');
  a.send({ type: 'COMPUTED' });
  assert.is(a.getSnapshot().context.schedule.fwdNext, 1);
  a.send({ type: 'PUBLISHED', sinceCheckpointMs: 0 });
  assert.is(a.getSnapshot().value, 'checkpointing', 'checkpointEvery 1: every message is a checkpoint');
  a.send({ type: 'CAPTURED' });
  assert.is(a.getSnapshot().value, 'waiting');
  assert.equal(awaitedInput(a.getSnapshot()), { port: 'fwd', seq: 1 });
  assert.is(a.getSnapshot().context.epoch, 3);
});

test('the schedule is machine logic: a depth-1 layer awaits F0 F1 B0 F2 B1 … end, B last', () => {
  const a = start('layer', 1);
  const order: string[] = [];
  const inputs: Partial<Record<Port, MessageKind>> = { fwd: 'fwd', bwd: 'bwd', target: 'target' };
  for (let guard = 0; guard < 20; guard++) {
    const want = awaitedInput(a.getSnapshot());
    if (!want) break;
    // The trainer sends 3 forwards, then `end` at seq 3.
    const kind = want.port === 'fwd' && want.seq === 3 ? 'end' : inputs[want.port]!;
    order.push(`${kind}${want.seq}`);
    apply(a, kind, want.seq);
  }
  assert.equal(order, ['fwd0', 'fwd1', 'bwd0', 'fwd2', 'bwd1', 'end3', 'bwd2']);
  assert.is(a.getSnapshot().value, 'done', 'done by guard once the schedule is complete');
  assert.is(a.getSnapshot().context.applied, 3);
});

test('guard: a duplicate (seq already applied) is skipped and counted, then the machine waits again', () => {
  const a = start();
  apply(a, 'fwd', 0);
  a.send(message('fwd', 0));
  assert.ok(a.getSnapshot().matches({ skipping: 'covered' }), 'its checkpoint covers it: ack it');
  assert.is(a.getSnapshot().context.duplicates, 1);
  a.send({ type: 'SKIPPED' });
  assert.is(a.getSnapshot().value, 'waiting');
  assert.equal(a.getSnapshot().context.schedule.fwdNext, 1, 'nothing applied');
});

test('guard: a seq ahead of the schedule is rejected as out of order', () => {
  const a = start();
  a.send(message('fwd', 5));
  assert.ok(a.getSnapshot().matches({ rejecting: 'outOfOrder' }));
  assert.is(a.getSnapshot().context.rejected, 1);
  a.send({ type: 'ACKED' });
  assert.equal(awaitedInput(a.getSnapshot()), { port: 'fwd', seq: 0 }, 'still awaits seq 0');
});

test('guard: a message for another port than the awaited one is rejected (before its seq is looked at)', () => {
  const a = start();
  a.send(message('bwd', 0));
  assert.ok(a.getSnapshot().matches({ rejecting: 'wrongPort' }));
  a.send({ type: 'ACKED' });
  // A kind that does not travel on the port it came from.
  a.send(message('bwd', 0, 'fwd'));
  assert.ok(a.getSnapshot().matches({ rejecting: 'wrongPort' }));
  assert.is(a.getSnapshot().context.rejected, 2);
});

test('guard: the awaited message that does not fit the state is rejected; a duplicate that does not fit is only skipped', () => {
  const a = start('layer', 0);
  apply(a, 'fwd', 0);
  a.send(message('bwd', 0, 'bwd', false));
  assert.ok(a.getSnapshot().matches({ rejecting: 'doesNotFit' }));
  a.send({ type: 'ACKED' });
  apply(a, 'bwd', 0);
  apply(a, 'fwd', 1);
  a.send(message('bwd', 0, 'bwd', false));
  assert.ok(a.getSnapshot().matches('skipping'));
});

test('INVALID (the validator refused it) is counted as a rejection', () => {
  const a = start();
  a.send({ type: 'INVALID' });
  assert.ok(a.getSnapshot().matches({ rejecting: 'invalid' }));
  assert.is(a.getSnapshot().context.rejected, 1);
  a.send({ type: 'ACKED' });
  assert.is(a.getSnapshot().value, 'waiting');
});

test('a loss takes fwd(s) then target(s); done once end is seen and every target applied', () => {
  const a = start('loss', 2);
  apply(a, 'fwd', 0);
  assert.equal(awaitedInput(a.getSnapshot()), { port: 'target', seq: 0 });
  a.send(message('fwd', 1));
  assert.ok(a.getSnapshot().matches({ rejecting: 'wrongPort' }), 'a loss never runs ahead of its targets');
  a.send({ type: 'ACKED' });
  apply(a, 'target', 0);
  apply(a, 'end', 1);
  assert.is(a.getSnapshot().value, 'done');
  assert.is(a.getSnapshot().context.applied, 1);
});

test('a snapshot persisted mid-pipeline survives JSON and resumes, role and depth included', () => {
  const a = start('layer', 1);
  apply(a, 'fwd', 0);
  apply(a, 'fwd', 1);
  a.send(message('bwd', 0));
  a.send({ type: 'COMPUTED' });
  a.send({ type: 'PUBLISHED', sinceCheckpointMs: 0 });
  assert.is(a.getSnapshot().value, 'checkpointing');
  const stored = JSON.parse(JSON.stringify(a.getPersistedSnapshot()));
  // The input given on restore is ignored: the snapshot carries its own.
  const b = createActor(vnodeMachine, { snapshot: stored, input: { role: 'loss', depth: 7, checkpoint: EVERY_MESSAGE } }).start();
  assert.is(b.getSnapshot().value, 'checkpointing');
  b.send({ type: 'RESTORED', epoch: 2, checkpoint: { every: 50, ms: 500 } });
  assert.is(b.getSnapshot().value, 'waiting');
  const c = b.getSnapshot().context;
  assert.equal(c.schedule, { fwdNext: 2, bwdNext: 1, targetNext: 0, endAt: null, fwdPart: 0, bwdPart: 0 });
  assert.is(c.applied, 1);
  assert.is(c.epoch, 2);
  assert.is(c.role, 'layer');
  assert.is(c.depth, 1);
  assert.equal(c.checkpoint, { every: 50, ms: 500 }, 'the policy is the deployment\'s now, not the stored one');
  assert.equal(c.captured, c.schedule, 'what was restored is covered');
  assert.equal(awaitedInput(b.getSnapshot()), { port: 'fwd', seq: 2 });
});

test('fenced, failed, stopped and passivated are final; passivation only while waiting', () => {
  const finals: Array<[string, (a: A) => void]> = [
    ['fenced', (a) => a.send({ type: 'FENCED' })],
    ['failed', (a) => (a.send(message('fwd', 0)), a.send({ type: 'FAILED', error: 'x' }))],
    ['stopped', (a) => a.send({ type: 'STOP' })],
    ['passivated', (a) => a.send({ type: 'PASSIVATE' })],
  ];
  for (const [state, reach] of finals) {
    const a = start();
    reach(a);
    assert.is(a.getSnapshot().value, state);
    assert.is(a.getSnapshot().status, 'done', `${state} is final`);
    a.send({ type: 'RESTORED', epoch: 9, checkpoint: EVERY_MESSAGE });
    assert.is(a.getSnapshot().value, state, 'nothing leaves a final state');
  }
  const busy = start();
  busy.send(message('fwd', 0));
  busy.send({ type: 'PASSIVATE' });
  assert.is(busy.getSnapshot().value, 'processing', 'not passivated with a message in hand');
});

test('done is not final: a finished VNode re-activated under a new epoch stays done', () => {
  const a = start('layer', 0);
  apply(a, 'end', 0);
  assert.is(a.getSnapshot().value, 'done');
  assert.is(a.getSnapshot().status, 'active');
  a.send({ type: 'RESTORED', epoch: 4, checkpoint: EVERY_MESSAGE });
  assert.is(a.getSnapshot().value, 'done');
  assert.is(a.getSnapshot().context.epoch, 4);
  a.send({ type: 'STOP' });
  assert.is(a.getSnapshot().value, 'stopped');
});

const SPARSE = { every: 3, ms: 1000 };
/** Apply one accepted message; return whether the machine then wanted a checkpoint. */
const applyAt = (a: A, kind: MessageKind, seq: number, sinceCheckpointMs = 0): boolean => {
  a.send(message(kind, seq));
  a.send({ type: 'COMPUTED' });
  a.send({ type: 'PUBLISHED', sinceCheckpointMs });
  const due = a.getSnapshot().value === 'checkpointing';
  if (due) a.send({ type: 'CAPTURED' });
  return due;
};

test('checkpoints: due after `every` applied messages; in between the effect is in memory', () => {
  const a = start('layer', 8, SPARSE);
  assert.equal([0, 1, 2, 3, 4, 5].map((s) => applyAt(a, 'fwd', s)), [false, false, true, false, false, true]);
  assert.is(a.getSnapshot().context.sinceCheckpoint, 0);
  assert.equal(a.getSnapshot().context.captured.fwdNext, 6);
});

test('checkpoints: due after `ms`, on a TICK past `ms`, on a flush — never with nothing applied', () => {
  const a = start('layer', 8, SPARSE);
  assert.is(applyAt(a, 'fwd', 0, 1500), true, 'PUBLISHED past ms');
  a.send({ type: 'TICK', sinceCheckpointMs: 5000, flush: true });
  assert.is(a.getSnapshot().value, 'waiting', 'nothing applied since: no checkpoint, even on a flush');
  applyAt(a, 'fwd', 1);
  a.send({ type: 'TICK', sinceCheckpointMs: 10 });
  assert.is(a.getSnapshot().value, 'waiting', 'a TICK before ms: not yet');
  a.send({ type: 'TICK', sinceCheckpointMs: 1000 });
  assert.is(a.getSnapshot().value, 'checkpointing');
  a.send({ type: 'CAPTURED' });
  applyAt(a, 'fwd', 2);
  a.send({ type: 'TICK', sinceCheckpointMs: 0, flush: true });
  assert.is(a.getSnapshot().value, 'checkpointing', 'a flush takes what is applied');
});

test('checkpoints: never sooner than minGapMs after the last (big states), but the end and a flush always', () => {
  const a = start('layer', 8, { every: 1, ms: 1000 });
  a.send(message('fwd', 0));
  a.send({ type: 'COMPUTED' });
  a.send({ type: 'PUBLISHED', sinceCheckpointMs: 100, minGapMs: 900 });
  assert.is(a.getSnapshot().value, 'waiting', 'due by count, but within the gap');
  a.send({ type: 'TICK', sinceCheckpointMs: 1200, minGapMs: 1500 });
  assert.is(a.getSnapshot().value, 'waiting', 'due by time, but within the gap');
  a.send({ type: 'TICK', sinceCheckpointMs: 1600, minGapMs: 1500 });
  assert.is(a.getSnapshot().value, 'checkpointing');
  a.send({ type: 'CAPTURED' });
  a.send(message('fwd', 1));
  a.send({ type: 'COMPUTED' });
  a.send({ type: 'PUBLISHED', sinceCheckpointMs: 0, minGapMs: 1e9 });
  assert.is(a.getSnapshot().value, 'waiting');
  a.send({ type: 'TICK', sinceCheckpointMs: 0, minGapMs: 1e9, flush: true });
  assert.is(a.getSnapshot().value, 'checkpointing', 'a flush ignores the gap');
});

test('checkpoints: the last message of the schedule is always checkpointed (completion is read from KV)', () => {
  const a = start('layer', 0, { every: 1000, ms: 60_000 });
  assert.is(applyAt(a, 'fwd', 0), false);
  assert.is(applyAt(a, 'bwd', 0), false);
  assert.is(applyAt(a, 'end', 1), true);
  assert.is(a.getSnapshot().value, 'done');
});

test('duplicates: covered by the captured checkpoint → skipping.covered; applied since → skipping.held (never acked early)', () => {
  const a = start('layer', 8, SPARSE);
  applyAt(a, 'fwd', 0);
  applyAt(a, 'fwd', 1);
  applyAt(a, 'fwd', 2); // checkpoint: covers fwd 0..2
  applyAt(a, 'fwd', 3); // in memory only
  a.send(message('fwd', 1));
  assert.ok(a.getSnapshot().matches({ skipping: 'covered' }));
  a.send({ type: 'SKIPPED' });
  a.send(message('fwd', 3));
  assert.ok(a.getSnapshot().matches({ skipping: 'held' }), 'applied but not checkpointed: held');
  a.send({ type: 'SKIPPED' });
  assert.is(a.getSnapshot().context.duplicates, 2);
  assert.equal(awaitedInput(a.getSnapshot()), { port: 'fwd', seq: 4 });
});

test('passivation only with nothing uncheckpointed', () => {
  const a = start('layer', 8, SPARSE);
  applyAt(a, 'fwd', 0);
  a.send({ type: 'PASSIVATE' });
  assert.is(a.getSnapshot().value, 'waiting', 'fwd 0 is only in memory');
  a.send({ type: 'TICK', sinceCheckpointMs: 0, flush: true });
  a.send({ type: 'CAPTURED' });
  a.send({ type: 'PASSIVATE' });
  assert.is(a.getSnapshot().value, 'passivated');
});

test.run();
