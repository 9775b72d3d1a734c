/**
 * The deterministic schedule (invariant 3): which input a VNode takes next depends
 * only on its own counters, never on which message happens to arrive first.
 *
 * A layer or activation interleaves forwards and backwards with its own pipeline
 * depth d: it may run fwd(s) only once bwd(s−d−1) is applied. So its sequence of
 * operations is always F0 … Fd, B0, Fd+1, B1, … — the same on every placement —
 * and the weights fwd(s) sees are fixed. A loss takes fwd(s), then target(s).
 *
 * The model's `pipelineDepth` D is the depth of the first VNode; a VNode further down
 * keeps fewer steps in flight, in proportion to the round trip from it to the loss
 * (`vnodeDepth`), as a PipeDream 1F1B stage k of S keeps S − k.
 */
import { bwdPort, deltaPort, fwdPort, parsePort, PORT_OF_KIND, type MessageKind, type Port } from './protocol.js';

/** `aggregator`: a federated layer's aggregator (runtime/federated/), outside the model's graph. */
export type Role = 'layer' | 'activation' | 'merge' | 'loss' | 'aggregator';

/**
 * Federated rounds (runtime/federated/, docs/federated.md), part of the schedule: a
 * replica's layer with parameters takes its aggregator's `sync` of round k once it has
 * applied (k+1)·`every` updates, before anything else; an aggregator takes round k's
 * `delta` from each of its `replicas` in slot order, for `count` rounds.
 */
export interface Rounds {
  every: number;
  replicas: number;
  count: number;
}

/**
 * How many ports a VNode takes a step's forward and backward from: its inputs, and the
 * consumers of its output (a graph's fan-in and fan-out; 1 and 1 in a chain). A loss
 * has one input and no consumer.
 */
export interface Arity {
  inputs: number;
  consumers: number;
}
export const CHAIN_ARITY: Arity = { inputs: 1, consumers: 1 };

/** A VNode's position in its streams. Persisted inside the machine snapshot. */
export interface ScheduleState {
  /** Next forward seq to take. */
  fwdNext: number;
  /** Next backward seq to take (layers and activations). */
  bwdNext: number;
  /** Next target seq to take (losses). */
  targetNext: number;
  /** Seq of the `end` message once seen: no forward at or after it will come. */
  endAt: number | null;
  /**
   * Inputs of forward `fwdNext` taken so far (a VNode with several inputs takes them one
   * port at a time, slot 0 first). Absent = 0: snapshots from before graphs.
   */
  fwdPart?: number;
  /** Consumers' gradients of backward `bwdNext` taken so far (slot 0 first). Absent = 0. */
  bwdPart?: number;
  /** Federated rounds taken: a replica layer's syncs, an aggregator's rounds. Absent = 0. */
  syncNext?: number;
  /** An aggregator's deltas of round `syncNext` taken so far (slot 0 first). Absent = 0. */
  syncPart?: number;
}

export const initialSchedule = (): ScheduleState => ({ fwdNext: 0, bwdNext: 0, targetNext: 0, endAt: null, fwdPart: 0, bwdPart: 0 });

/**
 * What the VNode needs next, or null when its work for this run is done. A step that
 * needs several messages (several inputs, or several consumers' gradients) takes them in
 * slot order and finishes before anything else is taken.
 */
export function nextInput(role: Role, s: ScheduleState, depth: number, rounds?: Rounds): { port: Port; seq: number } | null {
  const fwdPart = s.fwdPart ?? 0;
  const bwdPart = s.bwdPart ?? 0;
  const syncNext = s.syncNext ?? 0;
  if (role === 'aggregator') {
    if (!rounds || syncNext >= rounds.count) return null;
    return { port: deltaPort(s.syncPart ?? 0), seq: syncNext };
  }
  // A round's sync comes right after the update that ends the round.
  if (rounds && role === 'layer' && fwdPart === 0 && bwdPart === 0 && s.bwdNext >= rounds.every * (syncNext + 1)) return { port: 'sync', seq: syncNext };
  const forwardsDone = s.endAt !== null && s.fwdNext >= s.endAt && fwdPart === 0;
  if (role === 'loss') {
    if (s.targetNext < s.fwdNext) return { port: 'target', seq: s.targetNext };
    return forwardsDone ? null : { port: 'fwd', seq: s.fwdNext };
  }
  if (fwdPart > 0) return { port: fwdPort(fwdPart), seq: s.fwdNext };
  if (bwdPart > 0) return { port: bwdPort(bwdPart), seq: s.bwdNext };
  if (forwardsDone) return s.bwdNext < s.fwdNext ? { port: 'bwd', seq: s.bwdNext } : null;
  if (s.fwdNext - s.bwdNext <= depth) return { port: 'fwd', seq: s.fwdNext };
  return { port: 'bwd', seq: s.bwdNext };
}

/** The schedule after applying message `kind` at `seq` from `port` (which must be what `nextInput` asked for). */
export function advance(s: ScheduleState, kind: MessageKind, seq: number, port: Port = PORT_OF_KIND[kind], arity: Arity = CHAIN_ARITY): ScheduleState {
  const slot = parsePort(port)?.slot ?? 0;
  switch (kind) {
    case 'sync':
      return { ...s, syncNext: seq + 1 };
    case 'delta':
      // An aggregator's inputs are its replicas.
      return slot + 1 < arity.inputs ? { ...s, syncPart: slot + 1 } : { ...s, syncNext: seq + 1, syncPart: 0 };
    case 'fwd':
      return slot + 1 < arity.inputs ? { ...s, fwdPart: slot + 1 } : { ...s, fwdNext: seq + 1, fwdPart: 0 };
    case 'end':
      return { ...s, endAt: seq };
    case 'bwd':
      return slot + 1 < arity.consumers ? { ...s, bwdPart: slot + 1 } : { ...s, bwdNext: seq + 1, bwdPart: 0 };
    case 'target':
      return { ...s, targetNext: seq + 1 };
  }
}

/** Whether applying `kind` from `port` completes a step's backward (or a loss's target): an update. */
export function completesUpdate(kind: MessageKind, port: Port, arity: Arity = CHAIN_ARITY): boolean {
  if (kind === 'target') return true;
  // An aggregator's round is its update (its outer optimizer's step); a sync is not one (the inner optimizer's step count goes on).
  if (kind === 'delta') return (parsePort(port)?.slot ?? 0) + 1 >= arity.inputs;
  return kind === 'bwd' && (parsePort(port)?.slot ?? 0) + 1 >= arity.consumers;
}

/** The first seq on `port` that a VNode whose schedule is `s` has not taken. */
export function portNext(s: ScheduleState, port: Port): number {
  const p = parsePort(port);
  if (!p) return 0;
  if (p.dir === 'target') return s.targetNext;
  if (p.dir === 'sync') return s.syncNext ?? 0;
  if (p.dir === 'delta') return (s.syncNext ?? 0) + (p.slot < (s.syncPart ?? 0) ? 1 : 0);
  if (p.dir === 'fwd') return s.fwdNext + (p.slot < (s.fwdPart ?? 0) ? 1 : 0);
  return s.bwdNext + (p.slot < (s.bwdPart ?? 0) ? 1 : 0);
}

/**
 * Whether a VNode whose schedule is `s` has taken message `kind` at `seq` on `port`
 * already: a checkpoint holding `s` covers it (an `end` is covered once seen).
 */
export function covers(s: ScheduleState, kind: MessageKind, seq: number, port: Port = PORT_OF_KIND[kind]): boolean {
  if (kind === 'end') return s.endAt === seq;
  return seq < portNext(s, port);
}

/**
 * Updates a layer applies between forward `seq` and the update from that seq's own
 * gradient, at pipeline depth d: F(s) runs once B(s−d−1) is applied and B(s) after
 * B(s−1), so min(s, d) — a pure function of the schedule, never of timing.
 */
export const staleness = (seq: number, depth: number): number => Math.min(seq, depth);

/**
 * The pipeline depth of a VNode `hops` edges from the loss (the longest path from it to
 * the loss), in a model whose input VNode is `inputHops` from it, for a model depth D:
 * round(D·hops/inputHops), D at the input VNode down to 0 at the loss. In a chain,
 * `hops` of VNode k is L − k.
 *
 * Why not D everywhere (as before): a VNode k must run fwd(s+d) before bwd(s), and
 * bwd(s) comes back after a round trip of 2(L−k) hops, while fwd(s+d) comes from the
 * first VNode d steps later. With d = D at every VNode, a VNode near the loss held
 * bwd(s) until fwd(s+D) arrived, which waited on the first VNode, which waited on that
 * same backward: depth 2 ran at 1.05× depth 0 (measured, 3 PNodes). Depths that shrink
 * with the distance to the loss let each backward meet the forward it waits for; they
 * never grow along an edge (a producer is at least one hop further from the loss than
 * its consumer), which keeps the schedule free of deadlock (a VNode waiting for a
 * forward always finds its producers able to send it). It also means layers near the
 * loss train on fresher weights.
 */
export function vnodeDepth(depth: number, hops: number, inputHops: number): number {
  if (inputHops <= 0 || hops <= 0) return 0;
  return Math.round((depth * hops) / inputHops);
}
