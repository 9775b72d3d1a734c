import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { MemberView } from '../runtime/protocol.js';
import { createPlacement } from './placement/index.js';
import { planMoves, type ReconcileInput } from './reconcile.js';

const ALL = ['layer.dense', 'activation.relu', 'loss.softmaxCrossEntropy'];
const member = (id: string, types = ALL, maxVNodes = 256): MemberView => ({
  id, pid: 1, alive: true, draining: false, vnodes: [], lastHeartbeat: 0,
  capacity: { cores: 2, memoryMb: 1024, kernelMode: 'js', gflops: 100, maxVNodes, types },
  counters: { fencedWrites: 0, rejected: 0, restarts: 0, escalations: 0, activations: 0 },
});
const model = ['layer.dense', 'activation.relu', 'layer.dense', 'loss.softmaxCrossEntropy'].map((type, i) => ({ vnode: `m.${i}`, type }));
const plan = (o: Partial<ReconcileInput>) =>
  planMoves({ candidates: [], wanted: model, current: new Map(), escalated: new Map(), draining: new Set(), joined: [], placement: createPlacement('least-loaded'), ...o });

test('a new deployment is placed on every candidate, neighbours together', () => {
  const moves = plan({ candidates: [member('a'), member('b')] });
  assert.equal(moves.map((m) => m.reason), ['new', 'new', 'new', 'new']);
  assert.equal(moves.map((m) => m.pnode), ['a', 'a', 'b', 'b']);
});

test('a VNode goes only to PNodes that know its type; with none, it waits', () => {
  const moves = plan({ candidates: [member('a', ['layer.dense', 'loss.softmaxCrossEntropy']), member('b')] });
  assert.is(moves.find((m) => m.vnode === 'm.1')?.pnode, 'b');
  const none = plan({ candidates: [member('a', ['layer.dense'])] });
  assert.equal(none.map((m) => m.vnode), ['m.0', 'm.2'], 'only the dense layers are placed');
});

test('maxVNodes is a hard limit: past it a PNode gets nothing more', () => {
  const moves = plan({ candidates: [member('a', ALL, 1), member('b', ALL, 2)] });
  const on = (p: string) => moves.filter((m) => m.pnode === p).length;
  assert.is(on('a'), 1);
  assert.is(on('b'), 2);
  assert.is(moves.length, 3, 'the fourth waits for room');
});

test('the owner of a dead PNode moves, an escalated VNode leaves the PNode that gave up on it', () => {
  const current = new Map([['m.0', 'a'], ['m.1', 'a'], ['m.2', 'gone'], ['m.3', 'b']]);
  const moves = plan({ candidates: [member('a'), member('b')], current, escalated: new Map([['m.1', 'a']]) });
  assert.equal(moves.find((m) => m.vnode === 'm.2')?.reason, 'owner dead');
  const esc = moves.find((m) => m.vnode === 'm.1');
  assert.is(esc?.reason, 'escalated');
  assert.is(esc?.pnode, 'b');
});

test('draining owners are moved with reason drain; a newcomer gets a bounded rebalance', () => {
  const current = new Map([['m.0', 'a'], ['m.1', 'a'], ['m.2', 'a'], ['m.3', 'a']]);
  const drained = plan({ candidates: [member('b')], current, draining: new Set(['a']) });
  assert.equal(drained.map((m) => `${m.vnode}:${m.reason}`), ['m.0:drain', 'm.1:drain', 'm.2:drain', 'm.3:drain']);
  const rebalance = plan({ candidates: [member('a'), member('c')], current, joined: ['c'], rebalanceMoves: 1 });
  assert.equal(rebalance, [{ vnode: 'm.3', pnode: 'c', reason: 'rebalance' }]);
});

test.run();
