/**
 * The effect of one message on one VNode, as a pure function of (its state, the
 * message): the outputs it sends, its new tensors and stash, and whether it was an
 * update. The actor host (runtime/vnode-actor.ts) runs it on every applied message; the
 * ledger's verifier (runtime/ledger/verify.ts) runs it again on the recorded inputs, and
 * gets the same bytes (determinism, invariant 3).
 *
 * In a graph, a forward with several inputs (a merge) gathers them in its stash until
 * the last; a backward with several consumers sums their gradients, in slot order, until
 * the last (model.ts). State is never mutated: a new stash map and a new tensors object
 * are returned, so a caller may keep references to the old ones (served versions, the
 * ledger's anchors).
 */
import type { Kernels } from './kernels/types.js';
import type { ResolvedVNode } from './model.js';
import { fwdPort, parsePort, type MessageKind, type Port } from './protocol.js';
import { staleness } from './schedule.js';
import type { Tensor } from './tensor.js';
import type { LossDefinition, MergeDefinition, Tensors, TransformDefinition, VNodeContext } from './vnode-type.js';
import { aggregate, applySync, replicaDelta } from './federated/rounds.js';

export interface StepState {
  tensors: Tensors;
  /** Per seq, the arrays a forward kept for its backward (negative keys: gradient sums in progress). */
  stash: ReadonlyMap<number, Float32Array[]>;
  /** Updates applied before this message (the machine's `applied`): the optimizer's step is this + 1. */
  applied: number;
}

export interface StepInput {
  kind: MessageKind;
  port: Port;
  seq: number;
  tensor?: Tensor;
}

export interface StepOutput {
  to: number;
  kind: MessageKind;
  port: Port;
  tensor?: Tensor;
  /** Its seq when not the input's: a federated round's number (`delta`, `sync`). */
  seq?: number;
}

export interface StepResult {
  outputs: StepOutput[];
  tensors: Tensors;
  stash: Map<number, Float32Array[]>;
  /** The update's step number, when this message updated the VNode (its backward). */
  update?: number;
  /** A loss VNode's loss over `rows` rows, when it computed one. */
  loss?: { value: number; rows: number };
}

/**
 * Where a VNode with several consumers sums the gradients of backward `seq` until the
 * last one comes: a stash entry under a negative key, so it is checkpointed like the rest.
 */
const gradSumKey = (seq: number) => -1 - seq;

/** a + b, elementwise, in float32 (the fixed-order sum of a VNode's consumers' gradients). */
function addArrays(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

function withoutKey<V>(map: ReadonlyMap<number, V>, key: number): Map<number, V> {
  const next = new Map(map);
  next.delete(key);
  return next;
}

/** Apply message `m` (already validated and awaited by the schedule) to VNode `v` in `state`; `id` names it in errors. */
export async function applyStep(v: ResolvedVNode, kernels: Kernels, state: StepState, m: StepInput, id: string): Promise<StepResult> {
  let { tensors } = state;
  const stash = state.stash;
  const ctx: VNodeContext<unknown> = {
    k: kernels,
    config: v.config,
    inFeatures: v.inFeatures,
    outFeatures: v.outFeatures,
    staleness: m.kind === 'fwd' ? staleness(m.seq, v.depth) : 0,
  };
  const slot = parsePort(m.port)?.slot ?? 0;
  const same = (outputs: StepOutput[], next: ReadonlyMap<number, Float32Array[]> = stash): StepResult => ({ outputs, tensors, stash: next as Map<number, Float32Array[]> });
  /** The gradient for input `j` goes to its producer (none for the dataset). */
  const gradient = (j: number, dx: Tensor | undefined): StepOutput[] => {
    const from = v.inputs[j];
    if (from < 0) return [];
    if (!dx) throw new Error(`${v.def.type}.backward returned no gradient for input ${j} although one was needed`);
    return [{ to: from, kind: 'bwd', port: v.gradPorts[j], tensor: dx }];
  };

  // Federated rounds (runtime/federated/rounds.ts): an aggregator's deltas, a replica layer's sync.
  if (m.kind === 'delta') {
    const r = aggregate(v, state, m.seq, slot, m.tensor!);
    return { outputs: r.outputs, tensors: r.tensors, stash: r.stash, ...(slot + 1 === v.inputs.length ? { update: state.applied + 1 } : {}) };
  }
  if (m.kind === 'sync') return { outputs: [], tensors: applySync(v, tensors, m.tensor!), stash: stash as Map<number, Float32Array[]> };

  // `end` comes on the first input only, and goes to every consumer that reads us there.
  if (m.kind === 'end') return same(v.consumers.filter((c) => c.slot === 0).map((c) => ({ to: c.index, kind: 'end', port: fwdPort(0) })));

  if (v.def.role === 'loss') {
    const def = v.def as LossDefinition<unknown>;
    if (m.kind === 'fwd') {
      // Its shape first ([rows] + the rest: a sequence's logits are rank 3), then the logits.
      return same([], new Map(stash).set(m.seq, [Float32Array.from(m.tensor!.shape), m.tensor!.data]));
    }
    // target
    const [shapeOf, logits] = stash.get(m.seq)!;
    const rows = m.tensor!.shape[0];
    // (A stash from before sequences holds only the rows.)
    const shape = shapeOf.length > 1 ? [...shapeOf] : [rows, v.inFeatures];
    const { loss, dx } = await def.loss(ctx, { shape, data: logits }, m.tensor!);
    if (!Number.isFinite(loss)) throw new Error(`${id}: loss is ${loss} at seq ${m.seq} (diverged)`);
    return { ...same(gradient(0, dx), withoutKey(stash, m.seq)), loss: { value: loss, rows } };
  }

  if (m.kind === 'fwd') {
    const x = m.tensor!;
    let result;
    if (v.def.role === 'merge') {
      const gathered = slot === 0 ? [] : stash.get(m.seq)!.slice(1);
      if (slot + 1 < v.inputs.length) return same([], new Map(stash).set(m.seq, [Float32Array.from(x.shape), ...gathered, x.data]));
      const xs = [...gathered, x.data].map((data) => ({ shape: x.shape, data }));
      result = await (v.def as MergeDefinition<unknown>).forward(ctx, tensors, xs);
    } else {
      result = await (v.def as TransformDefinition<unknown>).forward(ctx, tensors, x);
    }
    const next = new Map(stash).set(m.seq, [Float32Array.of(x.shape[0]), ...(result.stash ?? [])]);
    return same(
      v.consumers.map((c) => ({ to: c.index, kind: 'fwd', port: fwdPort(c.slot), tensor: result.y })),
      next,
    );
  }

  // bwd: from consumer `slot`; with several consumers, their gradients are summed in slot order.
  let dy = m.tensor!;
  let rest: ReadonlyMap<number, Float32Array[]> = stash;
  if (v.consumers.length > 1) {
    const key = gradSumKey(m.seq);
    const sum = slot === 0 ? dy.data : addArrays(stash.get(key)![0], dy.data);
    if (slot + 1 < v.consumers.length) return same([], new Map(stash).set(key, [sum]));
    rest = withoutKey(stash, key);
    dy = { shape: dy.shape, data: sum };
  }
  const [, ...kept] = rest.get(m.seq)!;
  const step = state.applied + 1;
  const next = withoutKey(rest, m.seq);
  if (v.def.role === 'merge') {
    const needDx = v.inputs.map((from) => from >= 0);
    const result = await (v.def as MergeDefinition<unknown>).backward({ ...ctx, step, needDx }, tensors, dy, kept);
    if (result.tensors) tensors = { ...tensors, ...result.tensors };
    return { outputs: v.inputs.flatMap((_, j) => gradient(j, result.dxs[j])), tensors, stash: next, update: step };
  }
  const needDx = v.inputs[0] >= 0;
  const result = await (v.def as TransformDefinition<unknown>).backward({ ...ctx, step, needDx }, tensors, dy, kept);
  if (result.tensors) tensors = { ...tensors, ...result.tensors };
  // A federated layer's update that ends a round also sends the round's delta to its aggregator.
  const round = v.fed?.rounds ? replicaDelta(v, tensors, step) : { tensors, outputs: [] };
  return { outputs: [...gradient(0, result.dx), ...round.outputs], tensors: round.tensors, stash: next, update: step };
}
