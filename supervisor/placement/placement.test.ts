import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { MemberView } from '../../runtime/protocol.js';
import { createTimeoutDetector } from '../detectors/timeout.js';
import { createPlacement } from './index.js';

const member = (id: string, gflops = 100): MemberView => ({
  id, pid: 1, alive: true, draining: false, vnodes: [], lastHeartbeat: 0,
  capacity: { cores: 2, memoryMb: 1024, kernelMode: 'js', gflops, maxVNodes: 256, types: ['layer.dense'] },
  counters: { fencedWrites: 0, rejected: 0, restarts: 0, escalations: 0, activations: 0 },
});
const vnodes = (n: number) => Array.from({ length: n }, (_, i) => `m.${i}`);

test('least-loaded: equal PNodes get equal shares, adjacent VNodes together', () => {
  const out = createPlacement('least-loaded').place({ toPlace: vnodes(6), candidates: [member('a'), member('b', 130), member('c', 80)], current: new Map() });
  const counts = new Map<string, number>();
  for (const p of out.values()) counts.set(p, (counts.get(p) ?? 0) + 1);
  assert.equal([...counts.values()].sort(), [2, 2, 2]);
  assert.is(out.get('m.0'), out.get('m.1'));
  assert.is(out.get('m.2'), out.get('m.3'));
});

test('least-loaded: a 4× faster PNode takes more', () => {
  const out = createPlacement('least-loaded').place({ toPlace: vnodes(10), candidates: [member('fast', 400), member('slow', 100)], current: new Map() });
  const fast = [...out.values()].filter((p) => p === 'fast').length;
  assert.ok(fast >= 7, `fast got ${fast}`);
});

test('least-loaded: moving VNodes go to the least loaded survivor', () => {
  const current = new Map([['m.0', 'a'], ['m.1', 'a'], ['m.2', 'dead'], ['m.3', 'b']]);
  const out = createPlacement('least-loaded').place({ toPlace: ['m.2'], candidates: [member('a'), member('b')], current });
  assert.is(out.get('m.2'), 'b');
});

test('least-loaded: big layers spread over PNodes by their bytes, small models still by count', () => {
  // bench memory's model: 784 → 4×4000 → 10 with Adam, as the trainer estimates it.
  const MB = 2 ** 20;
  const sizes = [40, 0.1, 250, 0.1, 250, 0.1, 250, 0.1, 0.6, 0.01].map((m) => m * MB);
  const bytes = new Map(sizes.map((b, i) => [`m.${i}`, b]));
  const four = ['a', 'b', 'c', 'd'].map((id) => member(id));
  const out = createPlacement('least-loaded').place({ toPlace: vnodes(10), candidates: four, current: new Map(), bytes });
  const big = ['m.2', 'm.4', 'm.6'].map((v) => out.get(v));
  assert.is(new Set(big).size, 3, `each big layer on its own PNode: ${JSON.stringify(Object.fromEntries(out))}`);
  const perPNode = new Map<string, number>();
  for (const [v, p] of out) perPNode.set(p, (perPNode.get(p) ?? 0) + bytes.get(v)!);
  assert.ok(Math.max(...perPNode.values()) <= 267 * MB, `no PNode holds more than its share of the bytes: ${[...perPNode.values()].map((x) => Math.round(x / MB))} MiB`);

  // A PNode whose re-measured speed came out 1.8× the others' (weight 2: the noise of a
  // shared machine) takes more VNodes, but not the first layer beside a big one.
  const noisy = [member('a', 180), member('b'), member('c'), member('d')];
  const noisyOut = createPlacement('least-loaded').place({ toPlace: vnodes(10), candidates: noisy, current: new Map(), bytes });
  const held = new Map<string, number>();
  for (const [v, p] of noisyOut) held.set(p, (held.get(p) ?? 0) + bytes.get(v)!);
  assert.ok(Math.max(...held.values()) <= 267 * MB, `weight 2 holds no more bytes: ${JSON.stringify(Object.fromEntries(noisyOut))}`);

  // A 4× faster PNode takes more VNodes, but not more than one of the big ones.
  const skewed = [member('fast', 400), member('b'), member('c'), member('d')];
  const fastOut = createPlacement('least-loaded').place({ toPlace: vnodes(10), candidates: skewed, current: new Map(), bytes });
  const onFast = ['m.2', 'm.4', 'm.6'].filter((v) => fastOut.get(v) === 'fast');
  assert.ok(onFast.length <= 1, `the fast PNode got ${onFast.join(', ')}`);
  assert.ok([...fastOut.values()].filter((p) => p === 'fast').length >= 3, 'and still more VNodes than the others');

  // Without byte estimates (or with small ones) it is the count placement it always was.
  const small = new Map(vnodes(6).map((v) => [v, 1.2 * MB]));
  const three = [member('a'), member('b'), member('c')];
  const withBytes = createPlacement('least-loaded').place({ toPlace: vnodes(6), candidates: three, current: new Map(), bytes: small });
  const without = createPlacement('least-loaded').place({ toPlace: vnodes(6), candidates: three, current: new Map() });
  assert.equal([...withBytes], [...without]);
});

test('round-robin cycles through candidates', () => {
  const out = createPlacement('round-robin').place({ toPlace: vnodes(4), candidates: [member('b'), member('a')], current: new Map() });
  assert.equal([...out.values()], ['a', 'b', 'a', 'b']);
});

test('no candidates: nothing placed; unknown strategy: clear error', () => {
  assert.is(createPlacement('least-loaded').place({ toPlace: vnodes(2), candidates: [], current: new Map() }).size, 0);
  assert.throws(() => createPlacement('magic'), /unknown placement "magic" \(known: least-loaded, round-robin\)/);
});

test('timeout detector: dead after the timeout of silence, alive again on a heartbeat', () => {
  const d = createTimeoutDetector({ timeoutMs: 1000 });
  d.heartbeat('p', 0);
  assert.not.ok(d.isDead('p', 999));
  assert.ok(d.isDead('p', 1001));
  d.heartbeat('p', 1500);
  assert.not.ok(d.isDead('p', 2000));
  assert.ok(d.isDead('never-seen', 0));
});

test('least-loaded: a federated deployment\'s replicas each get a PNode of their own, the aggregators spread', () => {
  // mnist-mlp × 3 replicas (groups r0..r2 of 6 VNodes), then 3 aggregators (group agg), as the supervisor's deployedVNodes says.
  const all = vnodes(21);
  const groups = new Map(all.map((v, i) => [v, i < 18 ? `m.r${Math.floor(i / 6)}` : 'm.agg']));
  const out = createPlacement('least-loaded').place({ toPlace: all, candidates: [member('a'), member('b'), member('c')], current: new Map(), groups });
  for (let r = 0; r < 3; r++) {
    const hosts = new Set(all.slice(r * 6, r * 6 + 6).map((v) => out.get(v)));
    assert.is(hosts.size, 1, `replica ${r} on one PNode: ${[...hosts]}`);
  }
  assert.is(new Set([0, 6, 12].map((i) => out.get(`m.${i}`))).size, 3, 'three replicas, three PNodes');
  assert.is(new Set([18, 19, 20].map((i) => out.get(`m.${i}`))).size, 3, 'the aggregators spread');
  // Without groups the same 21 VNodes run replica 1 across two PNodes (the predecessor rule ignores where a replica starts).
  const plain = createPlacement('least-loaded').place({ toPlace: all, candidates: [member('a'), member('b'), member('c')], current: new Map() });
  assert.is.not(new Set(all.slice(6, 12).map((v) => plain.get(v))).size, 1);
});

test.run();
