/**
 * The deterministic schedule (invariant 3): which input a VNode takes next depends
 * only on its own counters, never on which message happens to arrive first.
 *
 * A layer or activation interleaves forwards and backwards with a fixed pipeline
 * depth d: it may run fwd(s) only once bwd(s−d−1) is applied. So its sequence of
 * operations is always F0 … Fd, B0, Fd+1, B1, … — the same on every placement —
 * and the weights fwd(s) sees are fixed. A loss takes fwd(s), then target(s).
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
 * Updates a layer applies between forward `seq` and the update from that seq's own
 * gradient, at pipeline depth d: F(s) runs once B(s−d−1) is applied and B(s) after
 * B(s−1), so min(s, d) — a pure function of the schedule, never of timing.
 */
export const staleness = (seq: number, depth: number): number => Math.min(seq, depth);
