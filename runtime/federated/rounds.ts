/**
 * The math of a federated round (docs/federated.md), as pure functions of a VNode's
 * tensors and the message — runtime/vnode-step.ts calls them, so the actor, the
 * ledger's verifier and the auditors all run the same code.
 *
 * Replica layer, round k (after its (k+1)·H-th update): Δ = anchor − θ (its pseudo-
 * gradient: how far it moved this round), sent to its aggregator as C(Δ + e), keeping
 * the residual e ← (Δ + e) − D(C(Δ + e)) for the next round (error feedback). When the
 * aggregator's sync u comes: θ ← the outer step from the anchor, anchor ← θ. Its inner
 * optimizer's slots stay its own (DiLoCo).
 *
 * Aggregator, round k: the replicas' D(Δ_r) summed in replica order, g = sum / R, sent to
 * every replica as u = C(g + e), keeping e ← (g + e) − D(u). The outer optimizer then
 * runs on ĝ = D(u) — on the aggregator AND on every replica, the same function on the
 * same bits (`outerStep`): θ ← θ − lr·ĝ (avg), or m ← μ·m + ĝ, θ ← θ − lr·(ĝ + μ·m)
 * (Nesterov, as PyTorch's SGD with nesterov=True). So Nesterov's momentum is state every
 * replica keeps in step (as DeMo's replicated optimizer), and error feedback acts on the
 * average itself, not on a momentum-amplified step (measured: with the step compressed,
 * top-k and Nesterov lost 2–3 points). θ starts as the replicas' common initial
 * parameters: after every round every replica holds the aggregator's θ and m, bit for bit.
 *
 * Everything is float32, element by element, in a fixed order: the same bits on every
 * PNode and kernel mode.
 */
import type { ResolvedVNode } from '../model.js';
import { deltaPort } from '../protocol.js';
import type { Tensor } from '../tensor.js';
import type { Tensors } from '../vnode-type.js';
import { decodeTensors, encodedKind, encodeTensors, kindOnTheWire } from './compress.js';
import { roundShapes, type FederatedPart } from './federation.js';
import { fromFrame, toFrame } from './frame.js';

/** Round state kept beside a parameter `p`, in the VNode's tensors (checkpointed with them). */
export const anchorOf = (p: string) => `${p}_fed_anchor`;
export const residualOf = (p: string) => `${p}_fed_residual`;
export const momentumOf = (p: string) => `${p}_fed_momentum`;

/** What a step of a round sends: one message per receiver. */
export interface RoundOutput {
  to: number;
  kind: 'delta' | 'sync';
  port: 'sync' | ReturnType<typeof deltaPort>;
  seq: number;
  tensor: Tensor;
}

function fed(v: ResolvedVNode) {
  if (!v.fed) throw new Error(`VNode ${v.index} (${v.def.type}) takes no part in federated rounds`);
  return v.fed;
}

/** A replica layer's initial tensors plus its round state: the anchor (its parameters now), zero residuals, and Nesterov's momentum. */
export function withReplicaState(v: ResolvedVNode, tensors: Tensors): Tensors {
  const out: Tensors = { ...tensors };
  const nesterov = fed(v).federation.outer === 'nesterov';
  for (const { name } of roundShapes(v)) {
    const p = tensors[name];
    if (!p) throw new Error(`VNode ${v.index} (${v.def.type}) has no parameter ${name} to anchor`);
    out[anchorOf(name)] = p.slice();
    out[residualOf(name)] = new Float32Array(p.length);
    if (nesterov) out[momentumOf(name)] = new Float32Array(p.length);
  }
  return out;
}

/**
 * The outer optimizer's step from θ with the decoded average ĝ: new θ (and momentum).
 * Replicas and aggregators both run it on the same bits, so they stay alike.
 */
function outerStep(f: FederatedPart, theta: Float32Array, momentum: Float32Array | undefined, g: Float32Array): { theta: Float32Array; momentum?: Float32Array } {
  const { outerLr: lr, momentum: mu } = f.federation;
  const next = new Float32Array(theta.length);
  if (f.federation.outer === 'avg') {
    for (let i = 0; i < next.length; i++) next[i] = theta[i] - lr * g[i];
    return { theta: next };
  }
  const m = new Float32Array(theta.length);
  for (let i = 0; i < next.length; i++) {
    m[i] = mu * momentum![i] + g[i];
    next[i] = theta[i] - lr * (g[i] + mu * m[i]);
  }
  return { theta: next, momentum: m };
}

/** An aggregator's initial tensors from its layer's initial parameters: θ, and zero residuals (and momentum, for Nesterov). */
export function aggregatorState(v: ResolvedVNode, layerInit: Tensors): Tensors {
  const out: Tensors = {};
  const nesterov = fed(v).federation.outer === 'nesterov';
  for (const { name } of roundShapes(v)) {
    const p = layerInit[name];
    if (!p) throw new Error(`the layer of aggregator ${v.index} has no parameter ${name}`);
    out[name] = p.slice();
    out[residualOf(name)] = new Float32Array(p.length);
    if (nesterov) out[momentumOf(name)] = new Float32Array(p.length);
  }
  return out;
}

/** Seed of a round's compression randomness (PowerSGD's start): per layer, round and direction. */
const seedOf = (base: number, round: number, dir: 'up' | 'down', replica = 0) => `dcnr/federated/${base}/${round}/${dir}/${replica}`;

/** After update `step` of a replica layer: the round's delta to its aggregator when `step` ends a round, else nothing. */
export function replicaDelta(v: ResolvedVNode, tensors: Tensors, step: number): { tensors: Tensors; outputs: RoundOutput[] } {
  const f = fed(v);
  if (!f.rounds || f.aggregator === undefined || step % f.rounds.every !== 0) return { tensors, outputs: [] };
  const round = step / f.rounds.every - 1;
  const shapes = roundShapes(v);
  const inputs = shapes.map(({ name, shape }) => {
    const theta = tensors[name];
    const anchor = tensors[anchorOf(name)];
    const delta = new Float32Array(theta.length);
    for (let i = 0; i < delta.length; i++) delta[i] = anchor[i] - theta[i];
    return { name, shape, data: delta, residual: tensors[residualOf(name)] };
  });
  const encoded = encodeTensors(f.federation.compress, inputs, seedOf(f.base, round, 'up', f.replica));
  const next: Tensors = { ...tensors };
  shapes.forEach(({ name }, j) => (next[residualOf(name)] = encoded.residuals[j]));
  return { tensors: next, outputs: [{ to: f.aggregator, kind: 'delta', port: deltaPort(f.replica ?? 0), seq: round, tensor: toFrame(encoded.bytes) }] };
}

/** A replica layer takes its aggregator's update: θ ← the outer step from the anchor with D(u), anchor ← θ. Throws on a frame that does not decode (a clear sentence). */
export function applySync(v: ResolvedVNode, tensors: Tensors, frame: Tensor): Tensors {
  const f = fed(v);
  const shapes = roundShapes(v);
  const update = decodeTensors(fromFrame(frame), shapes);
  const next: Tensors = { ...tensors };
  shapes.forEach(({ name }, j) => {
    const step = outerStep(f, tensors[anchorOf(name)], tensors[momentumOf(name)], update[j]);
    next[name] = step.theta;
    next[anchorOf(name)] = step.theta;
    if (step.momentum) next[momentumOf(name)] = step.momentum;
  });
  return next;
}

/**
 * Why a `delta` or `sync` cannot be applied to `v` in `state`, or null: a frame that does
 * not decode to this layer's parameters, that another compression made than the
 * deployment's, or whose values would make the round's sum or outer step non-finite.
 * The actor asks before it applies one (invariant 5: refused and dead-lettered, never a
 * throw inside the step that would fail the VNode again on every replay).
 */
export function roundInputProblem(v: ResolvedVNode, state: { tensors: Tensors; stash: ReadonlyMap<number, Float32Array[]> }, kind: 'delta' | 'sync', round: number, slot: number, frame: Tensor): string | null {
  const f = fed(v);
  const shapes = roundShapes(v);
  let decoded: Float32Array[];
  try {
    const bytes = fromFrame(frame);
    const made = encodedKind(bytes);
    const want = kindOnTheWire(f.federation.compress);
    if (made !== null && made !== want) return `it was compressed as ${made}, the deployment's updates are ${want}`;
    decoded = decodeTensors(bytes, shapes);
  } catch (err) {
    return `it does not decode: ${(err as Error).message}`;
  }
  const finite = (a: Float32Array) => a.every(Number.isFinite);
  if (kind === 'sync') {
    const ok = shapes.every(({ name }, j) => finite(outerStep(f, state.tensors[anchorOf(name)], state.tensors[momentumOf(name)], decoded[j]).theta));
    return ok ? null : `its update makes this layer's parameters non-finite`;
  }
  const before = slot === 0 ? undefined : state.stash.get(sumKey(round));
  if (slot > 0 && !before) return `there is no sum of round ${round} to add it to`;
  const sums = decoded.map((d, j) => (before ? d.map((x, i) => before[j][i] + x) : d));
  if (!sums.every(finite)) return `the round's sum of deltas would not be finite`;
  if (slot + 1 < f.federation.replicas) return null;
  const inv = Math.fround(1 / f.federation.replicas);
  const ok = shapes.every(({ name }, j) => finite(outerStep(f, state.tensors[name], state.tensors[momentumOf(name)], sums[j].map((x) => x * inv)).theta));
  return ok ? null : `the round's outer step would make the parameters non-finite`;
}

/** The key of an aggregator's running sum of round `round`'s deltas in its stash (checkpointed like any stash entry). */
const sumKey = (round: number) => round;

/**
 * An aggregator takes replica `slot`'s delta of `round`: decoded and added (in replica
 * order) to the round's sum in its stash; at the last replica, the outer step, and the
 * sync to every replica.
 */
export function aggregate(
  v: ResolvedVNode,
  state: { tensors: Tensors; stash: ReadonlyMap<number, Float32Array[]> },
  round: number,
  slot: number,
  frame: Tensor,
): { tensors: Tensors; stash: Map<number, Float32Array[]>; outputs: RoundOutput[] } {
  const f = fed(v);
  const { federation } = f;
  const R = federation.replicas;
  const shapes = roundShapes(v);
  const delta = decodeTensors(fromFrame(frame), shapes);
  const before = slot === 0 ? undefined : state.stash.get(sumKey(round));
  if (slot > 0 && !before) throw new Error(`aggregator ${v.index} has no sum of round ${round} to add replica ${slot}'s delta to`);
  const sum = delta.map((d, j) => {
    if (!before) return d.slice();
    const out = new Float32Array(d.length);
    const b = before[j];
    for (let i = 0; i < d.length; i++) out[i] = b[i] + d[i];
    return out;
  });
  const stash = new Map(state.stash);
  if (slot + 1 < R) {
    stash.set(sumKey(round), sum);
    return { tensors: state.tensors, stash, outputs: [] };
  }
  stash.delete(sumKey(round));
  const tensors: Tensors = { ...state.tensors };
  const inv = Math.fround(1 / R);
  const averages = shapes.map(({ name, shape }, j) => {
    const s = sum[j];
    const g = new Float32Array(s.length);
    for (let i = 0; i < g.length; i++) g[i] = s[i] * inv;
    return { name, shape, data: g, residual: state.tensors[residualOf(name)] };
  });
  const encoded = encodeTensors(federation.compress, averages, seedOf(f.base, round, 'down'));
  shapes.forEach(({ name }, j) => {
    const step = outerStep(f, state.tensors[name], state.tensors[momentumOf(name)], encoded.decoded[j]);
    tensors[name] = step.theta;
    if (step.momentum) tensors[momentumOf(name)] = step.momentum;
    tensors[residualOf(name)] = encoded.residuals[j];
  });
  const sync = toFrame(encoded.bytes);
  return { tensors, stash, outputs: v.inputs.map((to) => ({ to, kind: 'sync' as const, port: 'sync' as const, seq: round, tensor: sync })) };
}
