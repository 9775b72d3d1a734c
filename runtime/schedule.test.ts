import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createRng } from './rng.js';
import { advance, completesUpdate, covers, initialSchedule, nextInput, portNext, vnodeDepth, type Arity, type Role } from './schedule.js';
import { bwdPort, fwdPort, PORT_OF_KIND, type MessageKind, type Port } from './protocol.js';

/**
 * Feed a VNode's inputs in a random arrival order and record what it applies.
 * Invariant 3: the applied order must not depend on the arrival order.
 */
function appliedOrder(role: Role, depth: number, steps: number, seed: string, arity: Arity = { inputs: 1, consumers: role === 'loss' ? 0 : 1 }): string[] {
  const rng = createRng(seed);
  const pending: Array<{ port: Port; seq: number; kind: MessageKind }> = [];
  for (let s = 0; s < steps; s++) {
    for (let j = 0; j < arity.inputs; j++) pending.push({ port: fwdPort(j), seq: s, kind: 'fwd' });
    if (role === 'loss') pending.push({ port: 'target', seq: s, kind: 'target' });
    for (let c = 0; c < arity.consumers; c++) pending.push({ port: bwdPort(c), seq: s, kind: 'bwd' });
  }
  pending.push({ port: 'fwd', seq: steps, kind: 'end' });
  const arrived: typeof pending = [];
  let s = initialSchedule();
  const order: string[] = [];
  while (true) {
    // Something arrives (random order), then the VNode takes whatever its schedule allows.
    if (pending.length) arrived.push(pending.splice(rng.int(pending.length), 1)[0]);
    let progressed = true;
    while (progressed) {
      progressed = false;
      const want = nextInput(role, s, depth);
      if (!want) return order;
      const i = arrived.findIndex((m) => m.port === want.port && m.seq === want.seq);
      if (i >= 0) {
        const [m] = arrived.splice(i, 1);
        s = advance(s, m.kind, m.seq, m.port, arity);
        order.push(m.port === PORT_OF_KIND[m.kind] ? `${m.kind}${m.seq}` : `${m.port}:${m.seq}`);
        progressed = true;
      }
    }
    if (!pending.length && !arrived.length) return order;
  }
}

for (const role of ['layer', 'loss'] as const) {
  for (const depth of [0, 1, 3]) {
    test(`${role} depth ${depth}: applied order is independent of arrival order`, () => {
      const first = appliedOrder(role, depth, 12, 'a');
      for (const seed of ['b', 'c', 'd', 'e', 'f']) assert.equal(appliedOrder(role, depth, 12, seed), first);
      assert.is(first.filter((x) => x.startsWith(role === 'loss' ? 'target' : 'bwd')).length, 12, 'every update applied');
    });
  }
}

for (const arity of [{ inputs: 2, consumers: 1 }, { inputs: 1, consumers: 3 }, { inputs: 3, consumers: 2 }]) {
  for (const depth of [0, 2]) {
    test(`graph VNode of ${arity.inputs} inputs and ${arity.consumers} consumers, depth ${depth}: one order whatever the arrivals, parts in slot order`, () => {
      const first = appliedOrder('merge', depth, 10, 'a', arity);
      for (const seed of ['b', 'c', 'd', 'e']) assert.equal(appliedOrder('merge', depth, 10, seed, arity), first);
      assert.is(first.length, 10 * (arity.inputs + arity.consumers) + 1, 'every message taken once');
      // A step's parts are taken together, in slot order: fwd fwd1 fwd2 … then on.
      const f0 = first.indexOf('fwd0');
      assert.equal(first.slice(f0, f0 + arity.inputs), Array.from({ length: arity.inputs }, (_, j) => (j === 0 ? 'fwd0' : `fwd${j}:0`)));
    });
  }
}

test("parts: a port's watermark, coverage and the update count of a several-part step", () => {
  const arity = { inputs: 2, consumers: 2 };
  let s = advance(initialSchedule(), 'fwd', 0, 'fwd', arity);
  assert.equal([s.fwdNext, s.fwdPart, portNext(s, 'fwd'), portNext(s, 'fwd1')], [0, 1, 1, 0], 'fwd 0 taken on slot 0 only');
  assert.ok(covers(s, 'fwd', 0, 'fwd') && !covers(s, 'fwd', 0, 'fwd1'));
  assert.equal(nextInput('merge', s, 2), { port: 'fwd1', seq: 0 }, 'the step finishes before anything else');
  s = advance(s, 'fwd', 0, 'fwd1', arity);
  assert.equal([s.fwdNext, s.fwdPart], [1, 0]);
  assert.is(completesUpdate('bwd', 'bwd', arity), false);
  assert.is(completesUpdate('bwd', 'bwd1', arity), true);
  assert.is(completesUpdate('bwd', 'bwd', { inputs: 1, consumers: 1 }), true);
});

test('layer depth 1 interleaves F0 F1 B0 F2 B1 …', () => {
  assert.equal(appliedOrder('layer', 1, 4, 'x'), ['fwd0', 'fwd1', 'bwd0', 'fwd2', 'bwd1', 'fwd3', 'bwd2', 'end4', 'bwd3']);
});

test('vnodeDepth: the model depth at the first VNode, 0 at the loss, never growing down the chain', () => {
  assert.equal([0, 1, 2, 3, 4, 5].map((k) => vnodeDepth(2, 5 - k, 5)), [2, 2, 1, 1, 0, 0]);
  assert.equal([0, 1, 2, 3, 4, 5].map((k) => vnodeDepth(4, 5 - k, 5)), [4, 3, 2, 2, 1, 0]);
  for (let depth = 0; depth <= 16; depth++) {
    for (let loss = 1; loss <= 12; loss++) {
      const d = Array.from({ length: loss + 1 }, (_, k) => vnodeDepth(depth, loss - k, loss));
      assert.is(d[0], depth);
      assert.is(d[loss], 0);
      for (let k = 1; k <= loss; k++) assert.ok(d[k] <= d[k - 1], `depth ${depth}, loss ${loss}: ${d}`);
    }
  }
});

/**
 * A whole chain: the trainer's feeds and every VNode's outputs are delivered in a random
 * order, each VNode takes what its schedule (with its own depth) allows. It must finish
 * every step at every VNode: per-VNode depths must never deadlock the pipeline.
 */
function chainFinishes(depths: number[], steps: number, seed: string): boolean {
  const rng = createRng(seed);
  const last = depths.length - 1;
  type M = { to: number; kind: 'fwd' | 'bwd' | 'target' | 'end'; seq: number };
  const inFlight: M[] = [];
  const arrived: M[][] = depths.map(() => []);
  const state = depths.map(() => initialSchedule());
  for (let s = 0; s < steps; s++) inFlight.push({ to: 0, kind: 'fwd', seq: s }, { to: last, kind: 'target', seq: s });
  inFlight.push({ to: 0, kind: 'end', seq: steps });
  for (let guard = 0; guard < 100_000; guard++) {
    if (inFlight.length) {
      const m = inFlight.splice(rng.int(inFlight.length), 1)[0];
      arrived[m.to].push(m);
    }
    for (let k = 0; k <= last; k++) {
      for (;;) {
        const want = nextInput(k === last ? 'loss' : 'layer', state[k], depths[k]);
        if (!want) break;
        const i = arrived[k].findIndex((m) => (m.kind === 'bwd' ? 'bwd' : m.kind === 'target' ? 'target' : 'fwd') === want.port && m.seq === want.seq);
        if (i < 0) break;
        const [m] = arrived[k].splice(i, 1);
        state[k] = advance(state[k], m.kind, m.seq);
        if (m.kind === 'end' && k < last) inFlight.push({ to: k + 1, kind: 'end', seq: m.seq });
        if (m.kind === 'fwd' && k < last) inFlight.push({ to: k + 1, kind: 'fwd', seq: m.seq });
        if (m.kind === 'target' && k > 0) inFlight.push({ to: k - 1, kind: 'bwd', seq: m.seq });
        if (m.kind === 'bwd' && k > 0) inFlight.push({ to: k - 1, kind: 'bwd', seq: m.seq });
      }
    }
    if (!inFlight.length) return state.every((s, k) => nextInput(k === last ? 'loss' : 'layer', s, depths[k]) === null);
  }
  return false;
}

test('a chain with per-VNode depths finishes whatever the delivery order', () => {
  for (const depth of [0, 1, 2, 4, 7]) {
    for (const length of [2, 3, 6, 9]) {
      const depths = Array.from({ length }, (_, k) => vnodeDepth(depth, length - 1 - k, length - 1));
      for (const seed of ['a', 'b', 'c']) assert.ok(chainFinishes(depths, 20, `${depth}/${length}/${seed}`), `depths ${depths} stalled`);
    }
  }
});

test('the chain check can fail: a depth that grows down the chain stalls it', () => {
  assert.not.ok(chainFinishes([0, 3, 0], 20, 'grow'));
});

test.run();

test('federated rounds: a replica layer takes round k\'s sync right after its (k+1)·H-th update, before anything else; done after the last', () => {
  const rounds = { every: 2, replicas: 2, count: 2 };
  let s = initialSchedule();
  const order: string[] = [];
  for (let guard = 0; guard < 40; guard++) {
    const want = nextInput('layer', s, 1, rounds);
    if (!want) break;
    // The trainer sends 4 forwards, then `end` at seq 4.
    const kind: MessageKind = want.port === 'fwd' ? (want.seq === 4 ? 'end' : 'fwd') : want.port === 'sync' ? 'sync' : 'bwd';
    order.push(`${kind}${want.seq}`);
    assert.ok(!covers(s, kind, want.seq, want.port), 'not taken yet');
    s = advance(s, kind, want.seq, want.port);
    assert.ok(covers(s, kind, want.seq, want.port), 'taken now');
    assert.is(completesUpdate(kind, want.port), kind === 'bwd', 'a sync is not an update');
  }
  assert.equal(order, ['fwd0', 'fwd1', 'bwd0', 'fwd2', 'bwd1', 'sync0', 'fwd3', 'bwd2', 'end4', 'bwd3', 'sync1']);
  assert.is(portNext(s, 'sync'), 2);
  // Without rounds the same layer never asks for a sync.
  assert.is.not(nextInput('layer', { ...initialSchedule(), fwdNext: 3, bwdNext: 2 }, 1)?.port, 'sync');
});

test("federated rounds: an aggregator takes each round's deltas in replica order, one update per round, done after `count` rounds", () => {
  const rounds = { every: 5, replicas: 3, count: 2 };
  const arity = { inputs: 3, consumers: 0 };
  let s = initialSchedule();
  const order: string[] = [];
  let updates = 0;
  for (let want = nextInput('aggregator', s, 0, rounds); want; want = nextInput('aggregator', s, 0, rounds)) {
    order.push(`${want.port}@${want.seq}`);
    if (completesUpdate('delta', want.port, arity)) updates++;
    s = advance(s, 'delta', want.seq, want.port, arity);
  }
  assert.equal(order, ['delta@0', 'delta1@0', 'delta2@0', 'delta@1', 'delta1@1', 'delta2@1']);
  assert.is(updates, 2);
  // Mid-round: the slots taken are covered, the rest not.
  const mid = advance(initialSchedule(), 'delta', 0, 'delta', arity);
  assert.ok(covers(mid, 'delta', 0, 'delta'));
  assert.ok(!covers(mid, 'delta', 0, 'delta1'));
  assert.is(nextInput('aggregator', initialSchedule(), 0), null, 'an aggregator without rounds has nothing to do');
});
