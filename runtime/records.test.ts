import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BUILTIN_MODELS } from './model.js';
import {
  parseClusterEvent,
  parseDeploymentRecord,
  parseDrainingList,
  parseDrainRequest,
  parseEntry,
  parseHeartbeat,
  parseLeaseRecord,
  parseOwnershipRecord,
  parseStateMeta,
  parseStepMetric,
  parseSupervisorView,
  rejectOnce,
  type Parsed,
} from './records.js';

const capacity = { cores: 2, memoryMb: 1024, kernelMode: 'js', gflops: 1.5, maxVNodes: 256, types: ['layer.dense'] };
const counters = { fencedWrites: 0, rejected: 0, restarts: 0, escalations: 0, activations: 1 };
const GOOD: Array<[string, (d: string) => Parsed<unknown>, unknown]> = [
  ['ownership', parseOwnershipRecord, { pnode: 'pnode-1', epoch: 3, assignedAt: '2026-12-01T00:00:00Z' }],
  ['deployment', parseDeploymentRecord, { spec: BUILTIN_MODELS['mnist-mlp'], seed: 1, batch: 64, steps: 600, createdAt: 'x' }],
  ['heartbeat', parseHeartbeat, { pnode: 'pnode-1', pid: 9, at: 1, capacity, vnodes: ['m.0'], counters }],
  ['view', parseSupervisorView, { at: 1, supervisorPid: 2, pnodes: [{ id: 'pnode-1', pid: 9, alive: true, draining: false, capacity, vnodes: [], lastHeartbeat: 1, counters }] }],
  ['draining', parseDrainingList, ['pnode-1']],
  ['event', parseClusterEvent, { type: 'dead', pnode: 'pnode-1', at: 2, lastHeartbeat: 1 }],
  ['drain request', parseDrainRequest, { pnode: 'pnode-1' }],
  ['lease', parseLeaseRecord, { holder: 'supervisor-2', pid: 7, term: 3, renewedAt: 5 }],
  ['owned under a term', parseOwnershipRecord, { pnode: 'pnode-1', epoch: 3, assignedAt: 'x', term: 2 }],
  ['elected', parseClusterEvent, { type: 'elected', supervisor: 'supervisor-2', pid: 7, term: 3, at: 9 }],
  ['view with a leader', parseSupervisorView, { at: 1, supervisorPid: 2, leader: { name: 'supervisor', term: 1 }, pnodes: [] }],
  ['handover', parseOwnershipRecord, { pnode: 'pnode-2', epoch: 4, assignedAt: 'x', term: 2, handover: 'pnode-1' }],
  ['heartbeat with health', parseHeartbeat, { pnode: 'pnode-1', pid: 9, at: 1, capacity, vnodes: [], counters, health: { windowMs: 1000, loopLagMs: 12.5, gcShare: 0.01, heapShare: 0.02, freeMemShare: 0.6, kernelDrift: 1.1 } }],
  ['view with risk', parseSupervisorView, { at: 1, supervisorPid: 2, pnodes: [{ id: 'pnode-1', pid: 9, alive: true, draining: true, capacity, vnodes: [], lastHeartbeat: 1, counters, risk: 0.7, riskSignals: { kernelDrift: 0.7 } }] }],
  ['at-risk', parseClusterEvent, { type: 'at-risk', pnode: 'pnode-1', risk: 0.7, signals: { kernelDrift: 0.7, loopLag: 0 }, at: 3 }],
  ['recovered-health', parseClusterEvent, { type: 'recovered-health', pnode: 'pnode-1', risk: 0.1, at: 3 }],
  ['released with its checkpoint', parseClusterEvent, { type: 'released', vnode: 'm.1', pnode: 'pnode-1', at: 3, reason: 'now owned by pnode-2', epoch: 3, generation: 9, revision: 120 }],
  ['state meta', parseStateMeta, { format: 1, deployment: 'm', index: 0, type: 'layer.dense', typeVersion: 1, generation: 4, epoch: 1, version: 2, snapshot: {}, tensors: { W: { key: 'k', length: 4, chunks: 0 } }, stash: {}, updatedAt: 'x' }],
];

test('every parser accepts its record and refuses junk, wrong shapes, null and numbers with a sentence', () => {
  for (const [name, parse, good] of GOOD) {
    const ok = parse(JSON.stringify(good));
    assert.ok(ok.ok, `${name}: ${!ok.ok && ok.error}`);
    assert.equal(ok.ok && ok.value, good, `${name} round-trips`);
    // Wrong shape: the record without its first field.
    const missing = Array.isArray(good) ? '[1]' : JSON.stringify(Object.fromEntries(Object.entries(good as object).slice(1)));
    for (const bad of ['{nope', 'null', '42', '"text"', '[]', missing]) {
      if (name === 'draining' && bad === '[]') continue; // an empty list is a list
      const r = parse(bad);
      assert.not.ok(r.ok, `${name} accepted ${bad}`);
      assert.match(!r.ok ? r.error : '', /^[a-zA-Z -]+: /, `${name}: the error names the record`);
    }
  }
});

test('health and risk out of range are refused, naming the field', () => {
  const health = { windowMs: 1000, loopLagMs: 1, gcShare: 0.01, heapShare: 0.02, freeMemShare: 0.6, kernelDrift: 1 };
  for (const bad of [{ gcShare: 1.5 }, { loopLagMs: -1 }, { kernelDrift: 'x' }, { windowMs: 0 }]) {
    const r = parseHeartbeat(JSON.stringify({ pnode: 'p', pid: 1, at: 1, capacity, vnodes: [], counters, health: { ...health, ...bad } }));
    assert.not.ok(r.ok, JSON.stringify(bad));
    assert.match(!r.ok ? r.error : '', new RegExp(Object.keys(bad)[0]));
  }
  assert.not.ok(parseClusterEvent(JSON.stringify({ type: 'at-risk', pnode: 'p', risk: 2, signals: {}, at: 1 })).ok, 'a risk past 1');
});

test('an event of an unknown type or missing a field is refused', () => {
  assert.not.ok(parseClusterEvent(JSON.stringify({ type: 'explode' })).ok);
  assert.not.ok(parseClusterEvent(JSON.stringify({ type: 'dead', pnode: 'p' })).ok);
});

test('parseStepMetric: a metric of the run, or null', () => {
  const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  assert.equal(parseStepMetric(enc({ seq: 3, loss: 0.5, batch: 8, vnode: 'm.5' }), 10), { seq: 3, loss: 0.5, batch: 8, vnode: 'm.5' });
  assert.is(parseStepMetric(enc({ seq: 10, loss: 0.5, batch: 8, vnode: 'm.5' }), 10), null, 'past the run');
});

test('rejectOnce says each bad record once per key and revision; parseEntry skips deletes', () => {
  const lines: string[] = [];
  const reject = rejectOnce((l) => lines.push(l));
  const entry = (revision: number, value: string) => ({ bucket: 'b', key: 'k', revision, operation: 'PUT', length: value.length, value: new TextEncoder().encode(value) }) as never;
  assert.is(parseEntry(entry(1, '{x'), parseOwnershipRecord, reject), null);
  assert.is(parseEntry(entry(1, '{x'), parseOwnershipRecord, reject), null);
  assert.is(parseEntry(entry(2, '{x'), parseOwnershipRecord, reject), null);
  assert.equal(lines, ['rejected record b/k@1: ownership record: not JSON', 'rejected record b/k@2: ownership record: not JSON']);
  assert.is(parseEntry({ bucket: 'b', key: 'k', revision: 3, operation: 'DEL', length: 0, value: new Uint8Array() } as never, parseOwnershipRecord, reject), null);
  assert.is(lines.length, 2, 'a delete is not junk');
});

test.run();
