/**
 * The math of a federated round, as pure functions on a resolved mnist-mlp with three
 * replicas: after a round every replica holds the aggregator's parameters bit for bit;
 * plain averaging without compression is the replicas' mean; Nesterov follows its
 * reference over two rounds; the bytes a run reports are the frames' sizes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../../actors/index.js';
import { BUILTIN_MODELS, resolveModel, type ResolvedModel, type ResolvedVNode } from '../model.js';
import { createRng } from '../rng.js';
import type { Tensors } from '../vnode-type.js';
import { roundBytes, roundShapes } from './federation.js';
import { aggregate, aggregatorState, applySync, replicaDelta, roundInputProblem, withReplicaState } from './rounds.js';
import { encodeTensors } from './compress.js';
import { toFrame } from './frame.js';

const model = (outer: 'avg' | 'nesterov', compress: string): ResolvedModel =>
  resolveModel({ ...BUILTIN_MODELS['mnist-mlp'], federation: { replicas: 3, syncEvery: 4, rounds: 2, outer, compress } });

/** Layer 0 of each replica and its aggregator. */
function parts(m: ResolvedModel) {
  const N = m.federation!.perReplica;
  const replicas = [0, 1, 2].map((r) => m.vnodes[r * N]);
  const agg = m.vnodes.find((v) => v.fed?.layer?.index === 0)!;
  return { replicas, agg };
}

/** Layer 0's initial tensors (as every replica starts), then each replica's own walk away from them. */
function start(m: ResolvedModel) {
  const { replicas, agg } = parts(m);
  const init = replicas[0].def.init!({ config: replicas[0].config as never, inFeatures: 784, outFeatures: 128, rng: createRng('init') });
  const states = replicas.map((v) => withReplicaState(v, init));
  return { replicas, agg, states, aggState: { tensors: aggregatorState(agg, init), stash: new Map<number, Float32Array[]>() } };
}

function walk(v: ResolvedVNode, t: Tensors, seed: string): Tensors {
  const rng = createRng(seed);
  const out = { ...t };
  for (const { name } of roundShapes(v)) out[name] = t[name].map((x) => x + 0.01 * (rng.next() - 0.5));
  return out;
}

/** One round: every replica walks, sends its delta at step 4·(round+1), the aggregator takes them in order, every replica takes the sync. */
function round(s: ReturnType<typeof start>, k: number) {
  const deltas = s.replicas.map((v, r) => {
    s.states[r] = walk(v, s.states[r], `walk/${r}/${k}`);
    const d = replicaDelta(v, s.states[r], 4 * (k + 1));
    s.states[r] = d.tensors;
    assert.is(d.outputs.length, 1);
    return d.outputs[0];
  });
  let sync;
  for (let r = 0; r < 3; r++) {
    const a = aggregate(s.agg, s.aggState, k, r, deltas[r].tensor);
    s.aggState = { tensors: a.tensors, stash: a.stash };
    if (r < 2) assert.is(a.outputs.length, 0, 'no sync before the last replica');
    else sync = a.outputs;
  }
  assert.equal(sync!.map((o) => o.to), s.replicas.map((v) => v.index));
  s.states = s.states.map((t, r) => applySync(s.replicas[r], t, sync![r].tensor));
  return deltas;
}

const same = (a: Float32Array, b: Float32Array) => a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

for (const compress of ['none', 'int8', 'topk:0.01', 'powersgd:4']) {
  test(`after every round every replica holds the aggregator's parameters, bit for bit (${compress}, nesterov)`, () => {
    const s = start(model('nesterov', compress));
    for (let k = 0; k < 2; k++) {
      round(s, k);
      for (const { name } of roundShapes(s.agg)) {
        for (let r = 0; r < 3; r++) assert.ok(same(s.states[r][name], s.aggState.tensors[name]), `replica ${r} ${name} after round ${k}`);
        assert.ok(same(s.states[0][`${name}_fed_anchor`], s.aggState.tensors[name]), 'the anchor is the new parameters');
      }
    }
  });
}

test('avg without compression: the new parameters are the replicas\' mean (float32, replica order)', () => {
  const s = start(model('avg', 'none'));
  const before = s.states.map((t) => ({ ...t }));
  const walked = s.replicas.map((v, r) => walk(v, before[r], `walk/${r}/0`));
  round(s, 0);
  for (const { name } of roundShapes(s.agg)) {
    const want = new Float32Array(walked[0][name].length);
    for (let i = 0; i < want.length; i++) {
      const anchor = before[0][name][i];
      const sum = Math.fround(Math.fround(Math.fround(anchor - walked[0][name][i]) + Math.fround(anchor - walked[1][name][i])) + Math.fround(anchor - walked[2][name][i]));
      want[i] = anchor - Math.fround(Math.fround(sum * Math.fround(1 / 3)) * 1);
    }
    assert.ok(same(s.aggState.tensors[name], want), name);
  }
});

test('nesterov without compression follows m ← μm + g, θ ← θ − lr(g + μm) over two rounds, and every replica keeps the same momentum', () => {
  const m = model('nesterov', 'none');
  const { outerLr: lr, momentum: mu } = m.federation!;
  const s = start(m);
  const theta = Object.fromEntries(roundShapes(s.agg).map(({ name }) => [name, s.aggState.tensors[name].slice()]));
  const mom = Object.fromEntries(roundShapes(s.agg).map(({ name }) => [name, new Float32Array(theta[name].length)]));
  for (let k = 0; k < 2; k++) {
    const anchors = s.states.map((t) => ({ ...t }));
    const walked = s.replicas.map((v, r) => walk(v, anchors[r], `walk/${r}/${k}`));
    round(s, k);
    for (const { name } of roundShapes(s.agg)) {
      const t = theta[name];
      for (let i = 0; i < t.length; i++) {
        let sum = 0;
        for (let r = 0; r < 3; r++) sum = Math.fround(sum + Math.fround(anchors[r][name][i] - walked[r][name][i]));
        const g = Math.fround(sum * Math.fround(1 / 3));
        mom[name][i] = Math.fround(mu * mom[name][i] + g);
        t[i] = t[i] - lr * (g + mu * mom[name][i]); // rounded once, as stored
      }
      assert.ok(same(s.aggState.tensors[name], t), `${name} after round ${k}`);
      for (let r = 0; r < 3; r++) assert.ok(same(s.states[r][`${name}_fed_momentum`], s.aggState.tensors[`${name}_fed_momentum`]), `replica ${r}'s momentum`);
    }
  }
});

test('a round sends no delta before its last update, and the bytes a run counts are the frames on the wire', () => {
  for (const compress of ['none', 'int8', 'topk:0.01', 'powersgd:4']) {
    const m = model('avg', compress);
    const s = start(m);
    assert.equal(replicaDelta(s.replicas[0], s.states[0], 3).outputs, [], 'step 3 of a 4-step round');
    const { up } = roundBytes(m);
    // Every layer of replica 0 sends one delta per round: their frames add up to what the run counts.
    const N = m.federation!.perReplica;
    let sent = 0;
    for (const v of m.vnodes.slice(0, N).filter((v) => v.fed?.rounds)) {
      const init = v.def.init!({ config: v.config as never, inFeatures: v.inFeatures, outFeatures: v.outFeatures, rng: createRng('x') });
      const t = walk(v, withReplicaState(v, init), 'w');
      sent += replicaDelta(v, t, 4).outputs[0].tensor.data.byteLength;
    }
    assert.is(up, sent, compress);
  }
});

test('a frame that is not this layer\'s update is refused with a sentence, never applied', () => {
  const s = start(model('avg', 'topk:0.01'));
  const junk = { shape: [4], data: new Float32Array(4) };
  assert.throws(() => applySync(s.replicas[0], s.states[0], junk), /frame|says|bytes/);
  assert.throws(() => aggregate(s.agg, s.aggState, 0, 1, round(start(model('avg', 'topk:0.01')), 0)[0].tensor), /no sum of round 0/);
});

test('roundInputProblem: well-formed updates that would overflow, another compression, junk, a slot before its round — each named, never thrown', () => {
  const s = start(model('avg', 'none'));
  const shapes = roundShapes(s.agg);
  const frameOf = (c: Parameters<typeof encodeTensors>[0], value: number) =>
    toFrame(encodeTensors(c, shapes.map(({ name, shape }) => ({ name, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(value), residual: new Float32Array(shape.reduce((a, b) => a * b, 1)) })), 'x').bytes);
  const huge = frameOf({ kind: 'none' }, 3e38);
  assert.is(roundInputProblem(s.agg, s.aggState, 'delta', 0, 0, huge), null, 'alone it is finite');
  const first = aggregate(s.agg, s.aggState, 0, 0, huge);
  assert.match(roundInputProblem(s.agg, first, 'delta', 0, 1, huge)!, /sum of deltas would not be finite/);
  assert.match(roundInputProblem(s.agg, s.aggState, 'delta', 0, 0, frameOf({ kind: 'int8', block: 256 }, 0.1))!, /compressed as int8:256, the deployment's updates are none/);
  assert.match(roundInputProblem(s.agg, s.aggState, 'delta', 0, 0, { shape: [2], data: new Float32Array(2) })!, /does not decode/);
  assert.match(roundInputProblem(s.agg, s.aggState, 'delta', 0, 1, frameOf({ kind: 'none' }, 0.1))!, /no sum of round 0/);
  // Nesterov's step is lr·(ĝ + μ·m) = 0.7 · 1.9 · ĝ: past float32's range for ĝ = 3e38.
  const n = start(model('nesterov', 'none'));
  assert.match(roundInputProblem(n.replicas[0], { tensors: n.states[0], stash: new Map() }, 'sync', 0, 0, frameOf({ kind: 'none' }, 3e38))!, /non-finite/);
  assert.is(roundInputProblem(n.replicas[0], { tensors: n.states[0], stash: new Map() }, 'sync', 0, 0, frameOf({ kind: 'none' }, 0.01)), null);
});

test.run();
