import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createActor } from 'xstate';
import { vnodeMachine } from './vnode-machine.js';

test('lifecycle: activating → ready ⇄ processing → persisting → ready', () => {
  const a = createActor(vnodeMachine).start();
  assert.is(a.getSnapshot().value, 'activating');
  a.send({ type: 'ACTIVATED', epoch: 3 });
  assert.is(a.getSnapshot().value, 'ready');
  a.send({ type: 'RECEIVE', kind: 'fwd', seq: 0 });
  assert.is(a.getSnapshot().value, 'processing');
  a.send({ type: 'COMPUTED', kind: 'fwd', seq: 0 });
  assert.is(a.getSnapshot().value, 'persisting');
  assert.is(a.getSnapshot().context.schedule.fwdNext, 1);
  a.send({ type: 'PERSISTED' });
  assert.is(a.getSnapshot().value, 'ready');
  assert.is(a.getSnapshot().context.epoch, 3);
});

test('a snapshot persisted in `persisting` restores through JSON to ready with its counters', () => {
  const a = createActor(vnodeMachine).start();
  a.send({ type: 'ACTIVATED', epoch: 1 });
  for (const [kind, seq] of [['fwd', 0], ['fwd', 1], ['bwd', 0]] as const) {
    a.send({ type: 'RECEIVE', kind, seq });
    a.send({ type: 'COMPUTED', kind, seq });
    if (seq !== 0 || kind !== 'bwd') a.send({ type: 'PERSISTED' });
  }
  const stored = JSON.parse(JSON.stringify(a.getPersistedSnapshot()));
  const b = createActor(vnodeMachine, { snapshot: stored }).start();
  assert.is(b.getSnapshot().value, 'persisting');
  b.send({ type: 'RESTORED', epoch: 2 });
  assert.is(b.getSnapshot().value, 'ready');
  assert.equal(b.getSnapshot().context.schedule, { fwdNext: 2, bwdNext: 1, targetNext: 0, endAt: null });
  assert.is(b.getSnapshot().context.applied, 1);
  assert.is(b.getSnapshot().context.epoch, 2);
});

test('fenced and failed are final', () => {
  const a = createActor(vnodeMachine).start();
  a.send({ type: 'ACTIVATED', epoch: 1 });
  a.send({ type: 'FENCED' });
  assert.is(a.getSnapshot().status, 'done');
  const b = createActor(vnodeMachine).start();
  b.send({ type: 'ACTIVATED', epoch: 1 });
  b.send({ type: 'RECEIVE', kind: 'fwd', seq: 0 });
  b.send({ type: 'FAILED', error: 'x' });
  assert.is(b.getSnapshot().value, 'failed');
});

test.run();
