/**
 * The risk model (supervisor/health.ts) as documented: ramps, noisy-OR, smoothing over
 * heartbeats, the supervisor-side signals, and the drain policy.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Heartbeat, PNodeHealth } from '../runtime/protocol.js';
import { drainCandidate, reclaimCandidate, riskOf, SIGNALS, trackRisk } from './health.js';

const calm: PNodeHealth = { windowMs: 1000, loopLagMs: 20, gcShare: 0.02, heapShare: 0.01, freeMemShare: 0.5, kernelDrift: 1.1 };
const beat = (health: Partial<PNodeHealth> = {}, over: Partial<Heartbeat> = {}): Heartbeat => ({
  pnode: 'p1',
  pid: 7,
  at: 0,
  capacity: { cores: 2, memoryMb: 24_000, kernelMode: 'js', gflops: 40, maxVNodes: 64, types: [] },
  vnodes: [],
  counters: { fencedWrites: 0, rejected: 0, restarts: 0, escalations: 0, activations: 0 },
  health: { ...calm, ...health },
  ...over,
});

test('ramps: calm is 0, failing is the weight, linear between; noisy-OR combines them', () => {
  for (const s of SIGNALS) {
    const w = s.weight ?? 1;
    assert.is(riskOf({ [s.name]: s.calm }).risk, 0, s.name);
    assert.is(riskOf({ [s.name]: s.failing }).risk, w, s.name);
    assert.is(riskOf({ [s.name]: s.failing * 10 }).risk, w, `${s.name} is capped`);
    assert.is(riskOf({ [s.name]: (s.calm + s.failing) / 2 }).signals[s.name], w / 2, s.name);
  }
  const two = riskOf({ gc: 0.4, kernelDrift: 4 }); // each half way
  assert.equal(two.signals, { gc: 0.5, kernelDrift: 0.5 });
  assert.is(two.risk, 0.75, '1 − (1 − ½)(1 − ½)');
  // A PNode busy with its own work (activating a big layer) is not failing; slower kernels besides, it is.
  assert.ok(riskOf({ loopLag: 5000 }).risk < 0.6, 'loop lag alone drains nothing');
  assert.ok(riskOf({ loopLag: 5000, kernelDrift: 3 }).risk >= 0.6, 'loop lag and kernel drift do');
  assert.is(riskOf({ loopLag: NaN }).risk, 0, 'a signal that is not a number says nothing');
});

test('smoothing: one bad heartbeat is not a drain, a sustained signal is', () => {
  const t = trackRisk({ heartbeatMs: 250, detectMs: 1000 });
  let now = 0;
  for (let i = 0; i < 10; i++) t.heartbeat(beat(), (now += 250));
  assert.is(t.of('p1')!.risk, 0);
  t.heartbeat(beat({ kernelDrift: 100 }), (now += 250));
  assert.ok(t.of('p1')!.risk < 0.6, `one spike: ${t.of('p1')!.risk}`);
  assert.is(t.of('p1')!.signals.kernelDrift, 1, 'the signals are the last beat’s');
  for (let i = 0; i < 4; i++) t.heartbeat(beat({ kernelDrift: 100 }), (now += 250));
  assert.ok(t.of('p1')!.risk >= 0.6, `a second of it: ${t.of('p1')!.risk}`);
  t.heartbeat(beat({}, { pid: 8 }), (now += 250));
  assert.is(t.of('p1')!.risk, 0, 'a new incarnation starts afresh');
  t.forget('p1');
  assert.is(t.of('p1'), undefined);
});

test('supervisor-side signals: heartbeat gaps and restarts in the last minute', () => {
  const t = trackRisk({ heartbeatMs: 250, detectMs: 1000 });
  let now = 0;
  t.heartbeat(beat(), (now += 250));
  t.heartbeat(beat(), (now += 950)); // 700 ms late: (950 − 250) / 1000 = 0.7, failing
  assert.is(t.of('p1')!.signals.heartbeatGap, 1);
  const r = trackRisk({ heartbeatMs: 250, detectMs: 1000 });
  const counters = (restarts: number) => ({ counters: { fencedWrites: 0, rejected: 0, restarts, escalations: 0, activations: 0 } });
  r.heartbeat(beat({}, counters(2)), 1000);
  r.heartbeat(beat({}, counters(5)), 1250);
  assert.is(r.of('p1')!.signals.restarts, 0.5, '3 restarts since the window began: half way from 1 to 5');
  r.heartbeat(beat({}, counters(5)), 1250 + 61_000);
  assert.is(r.of('p1')!.signals.restarts, 0, 'a minute later they are forgotten');
});

test('drain policy: the riskiest owner past the threshold, only while a calm PNode is left', () => {
  const p = (id: string, risk: number, owns = 2, draining = false) => ({ id, risk, owns, draining });
  assert.is(drainCandidate({ drainAt: 0.6, pnodes: [p('a', 0.1), p('b', 0.59), p('c', 0)] }), undefined, 'below the threshold');
  assert.is(drainCandidate({ drainAt: 0.6, pnodes: [p('a', 0.7), p('b', 0.9), p('c', 0)] }), 'b', 'the riskiest first');
  assert.is(drainCandidate({ drainAt: 0.6, pnodes: [p('a', 0.7), p('b', 0.9, 0), p('c', 0)] }), 'a', 'one that owns nothing has nothing to move');
  assert.is(drainCandidate({ drainAt: 0.6, pnodes: [p('a', 0.7), p('b', 0.9, 2, true), p('c', 0)] }), 'a', 'one already draining is not drained again');
  assert.is(drainCandidate({ drainAt: 0.6, pnodes: [p('a', 0.7), p('b', 0.4)] }), undefined, 'nobody calm (< 0.3) to take its VNodes: a loaded machine, not a sick PNode');
  assert.is(drainCandidate({ drainAt: 0.6, pnodes: [p('a', 0.7), p('c', 0.1, 0, true)] }), undefined, 'a draining PNode is not somewhere to go');
});

test('a PNode drained for a false alarm is taken back when a real one needs somewhere to go', () => {
  const p = (id: string, risk: number, owns = 2, draining = false, riskDrained = false) => ({ id, risk, owns, draining, riskDrained });
  // Two healthy PNodes drained for alarms that are over; the one holding the model is now at risk.
  const pnodes = [p('a', 0.9, 6), p('b', 0.05, 0, true, true), p('c', 0.01, 0, true, true)];
  assert.is(reclaimCandidate({ drainAt: 0.6, pnodes }), 'c', 'the calmest comes back');
  assert.is(reclaimCandidate({ drainAt: 0.6, pnodes: [p('a', 0.9, 6), p('b', 0.25, 0, true, true)] }), undefined, 'still past a third of the threshold: not calm enough');
  assert.is(reclaimCandidate({ drainAt: 0.6, pnodes: [p('a', 0.9, 6), p('b', 0.01, 0, true, false)] }), undefined, 'drained by an operator (dcnr drain): never taken back');
  assert.is(reclaimCandidate({ drainAt: 0.6, pnodes: [p('a', 0.9, 6), p('b', 0.01, 0, true, true), p('c', 0.1)] }), undefined, 'a calm PNode is free: nothing to take back');
  assert.is(reclaimCandidate({ drainAt: 0.6, pnodes: [p('a', 0.5, 6), p('b', 0.01, 0, true, true)] }), undefined, 'nobody at risk');
});

test.run();
