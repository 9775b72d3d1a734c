import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createActor } from 'xstate';
import { vnodeMachine } from './vnode-machine.js';
import { parseMachineSnapshot, readProgress, toStateWrite } from './vnode-record.js';

/**
 * A depth-0 layer machine after F0 B0 … F(n-1) B(n-1) (and `end` at n if `ended`), as
 * the host stores it: taken in `checkpointing` of the last message (checkpointEvery 1).
 */
function storedSnapshot(n: number, ended = false): unknown {
  const a = createActor(vnodeMachine, { input: { role: 'layer', depth: 0, checkpoint: { every: 1, ms: 1000 } } }).start();
  a.send({ type: 'ACTIVATED', epoch: 1 });
  const steps: Array<['fwd' | 'bwd' | 'end', number]> = [];
  for (let s = 0; s < n; s++) steps.push(['fwd', s], ['bwd', s]);
  if (ended) steps.push(['end', n]);
  steps.forEach(([kind, seq], i) => {
    a.send({ type: 'MESSAGE', port: kind === 'bwd' ? 'bwd' : 'fwd', kind, seq, fits: true });
    a.send({ type: 'COMPUTED' });
    a.send({ type: 'PUBLISHED', sinceCheckpointMs: 0 });
    if (i < steps.length - 1) a.send({ type: 'CAPTURED' });
  });
  return JSON.parse(JSON.stringify(a.getPersistedSnapshot()));
}

const write = suite('toStateWrite');
write('takes the snapshot of the machine as it is now, with the type and ownership', () => {
  const machine = createActor(vnodeMachine, { input: { role: 'loss', depth: 2, checkpoint: { every: 1, ms: 1000 } } }).start();
  machine.send({ type: 'ACTIVATED', epoch: 7 });
  const tensors = { W: new Float32Array(2) };
  const stash = new Map([[0, [Float32Array.of(1)]]]);
  const w = toStateWrite({ generation: 4, epoch: 7, def: { type: 'loss.mse', version: 2 }, machine, tensors, stash });
  assert.equal({ generation: w.generation, epoch: w.epoch, type: w.type, typeVersion: w.typeVersion }, { generation: 4, epoch: 7, type: 'loss.mse', typeVersion: 2 });
  assert.is(w.tensors, tensors);
  assert.is(w.stash, stash);
  assert.equal(w.snapshot, machine.getPersistedSnapshot());
  assert.is(parseMachineSnapshot(w.snapshot).ok, true);
});
write.run();

const parse = suite('parseMachineSnapshot');
parse('a stored snapshot round-trips and resumes', () => {
  const r = parseMachineSnapshot(storedSnapshot(2));
  assert.ok(r.ok);
  const b = createActor(vnodeMachine, { snapshot: r.value, input: { role: 'layer', depth: 0, checkpoint: { every: 1, ms: 1000 } } }).start();
  b.send({ type: 'RESTORED', epoch: 2, checkpoint: { every: 1, ms: 1000 } });
  assert.is(b.getSnapshot().value, 'waiting');
  assert.equal(b.getSnapshot().context.schedule, { fwdNext: 2, bwdNext: 2, targetNext: 0, endAt: null, fwdPart: 0, bwdPart: 0 });
});
parse('anything else is refused with a reason, never a throw', () => {
  const good = storedSnapshot(1) as { context: Record<string, unknown> };
  const cases: Array<[string, unknown, RegExp]> = [
    ['null', null, /\(root\)/],
    ['a string', 'waiting', /\(root\)/],
    ['not active', { ...good, status: 'done' }, /status/],
    ['a state never stored', { ...good, value: 'processing' }, /value/],
    ['a snapshot of the old machine (no role, no depth)', { ...good, context: { ...good.context, role: undefined, depth: undefined } }, /context\.role.*context\.depth/],
    ['a negative seq', { ...good, context: { ...good.context, schedule: { fwdNext: -1, bwdNext: 0, targetNext: 0, endAt: null } } }, /context\.schedule\.fwdNext/],
    ['a message in hand', { ...good, context: { ...good.context, inHand: 'fwd' } }, /context\.inHand/],
    ['a fractional counter', { ...good, context: { ...good.context, applied: 1.5 } }, /context\.applied/],
  ];
  for (const [name, raw, reason] of cases) {
    const r = parseMachineSnapshot(raw);
    assert.is(r.ok, false, name);
    assert.match((r as { error: string }).error, reason, name);
  }
});
parse.run();

const progress = suite('readProgress');
progress('schedule, applied and completion of a stored record', () => {
  const mid = readProgress({ snapshot: storedSnapshot(3) });
  assert.ok(mid.ok);
  assert.equal(mid.value, { schedule: { fwdNext: 3, bwdNext: 3, targetNext: 0, endAt: null, fwdPart: 0, bwdPart: 0 }, applied: 3, complete: false });
  const end = readProgress({ snapshot: storedSnapshot(3, true) });
  assert.ok(end.ok);
  assert.is(end.value.complete, true);
  assert.is(end.value.applied, 3);
});
progress('refuses a record of another role or depth than the model says', () => {
  const r = readProgress({ snapshot: storedSnapshot(1) }, { role: 'layer', depth: 2 });
  assert.is(r.ok, false);
  assert.match((r as { error: string }).error, /depth 0, the model says a layer of depth 2/);
  assert.ok(readProgress({ snapshot: storedSnapshot(1) }, { role: 'layer', depth: 0 }).ok);
});
progress('a malformed snapshot yields no progress, with the reason', () => {
  const r = readProgress({ snapshot: { status: 'active', value: 'waiting', context: {} } });
  assert.is(r.ok, false);
  assert.match((r as { error: string }).error, /not a VNode machine snapshot/);
});
progress.run();
