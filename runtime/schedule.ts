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
import type { MessageKind, Port } from './protocol.js';

export type Role = 'layer' | 'activation' | 'loss';

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
}

export const initialSchedule = (): ScheduleState => ({ fwdNext: 0, bwdNext: 0, targetNext: 0, endAt: null });

/** What the VNode needs next, or null when its work for this run is done. */
export function nextInput(role: Role, s: ScheduleState, depth: number): { port: Port; seq: number } | null {
  const forwardsDone = s.endAt !== null && s.fwdNext >= s.endAt;
  if (role === 'loss') {
    if (s.targetNext < s.fwdNext) return { port: 'target', seq: s.targetNext };
    return forwardsDone ? null : { port: 'fwd', seq: s.fwdNext };
  }
  if (forwardsDone) return s.bwdNext < s.fwdNext ? { port: 'bwd', seq: s.bwdNext } : null;
  if (s.fwdNext - s.bwdNext <= depth) return { port: 'fwd', seq: s.fwdNext };
  return { port: 'bwd', seq: s.bwdNext };
}

/** The schedule after applying message `kind` at `seq` (which must be what `nextInput` asked for). */
export function advance(s: ScheduleState, kind: MessageKind, seq: number): ScheduleState {
  switch (kind) {
    case 'fwd':
      return { ...s, fwdNext: seq + 1 };
    case 'end':
      return { ...s, endAt: seq };
    case 'bwd':
      return { ...s, bwdNext: seq + 1 };
    case 'target':
      return { ...s, targetNext: seq + 1 };
  }
}

/**
 * Whether a VNode whose schedule is `s` has taken message `kind` at `seq` already: a
 * checkpoint holding `s` covers it (an `end` is covered once seen).
 */
export function covers(s: ScheduleState, kind: MessageKind, seq: number): boolean {
  switch (kind) {
    case 'fwd':
      return seq < s.fwdNext;
    case 'end':
      return s.endAt === seq;
    case 'bwd':
      return seq < s.bwdNext;
    case 'target':
      return seq < s.targetNext;
  }
}

/**
 * Updates a layer applies between forward `seq` and the update from that seq's own
 * gradient, at pipeline depth d: F(s) runs once B(s−d−1) is applied and B(s) after
 * B(s−1), so min(s, d) — a pure function of the schedule, never of timing.
 */
export const staleness = (seq: number, depth: number): number => Math.min(seq, depth);

/**
 * The pipeline depth of VNode `index` in a chain whose loss is VNode `lossIndex`, for a
 * model depth D: round(D·(L−k)/L), D at the first VNode down to 0 at the loss.
 *
 * Why not D everywhere (as before): a VNode k must run fwd(s+d) before bwd(s), and
 * bwd(s) comes back after a round trip of 2(L−k) hops, while fwd(s+d) comes from the
 * first VNode d steps later. With d = D at every VNode, a VNode near the loss held
 * bwd(s) until fwd(s+D) arrived, which waited on the first VNode, which waited on that
 * same backward: depth 2 ran at 1.05× depth 0 (measured, 3 PNodes). Depths that shrink
 * with the distance to the loss let each backward meet the forward it waits for; they
 * never grow down the chain, which keeps the schedule free of deadlock (a VNode waiting
 * for a forward always finds its predecessor able to send it). It also means layers
 * near the loss train on fresher weights.
 */
export function vnodeDepth(depth: number, index: number, lossIndex: number): number {
  if (lossIndex <= 0 || index >= lossIndex) return 0;
  return Math.round((depth * (lossIndex - index)) / lossIndex);
}
