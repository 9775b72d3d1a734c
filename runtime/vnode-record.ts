/**
 * The persisted VNode record, both directions, in one place: what an actor writes
 * (`toStateWrite`) and what readers make of a stored one (`parseMachineSnapshot`,
 * `readProgress`). Nothing read is trusted (invariant 7): a stored snapshot that is not
 * the shape this code writes is answered with an error sentence, never a throw — the
 * trainer and the scenario runner read these in polling loops.
 */
import { z } from 'zod';
import type { OutboxEntry } from './outbox.js';
import type { StateMeta, StateWrite } from './state-store.js';
import { nextInput, type Role, type ScheduleState } from './schedule.js';
import { RESTORABLE_STATES, type VNodeMachineContext, type VNodeMachineSnapshot } from './vnode-machine.js';
import type { Tensors } from './vnode-type.js';

/** What an actor persists: ownership, its type, its machine and its tensors. */
export interface VNodeRecordSource {
  generation: number;
  epoch: number;
  def: { type: string; version: number };
  machine: { getPersistedSnapshot(): unknown };
  tensors: Tensors;
  stash: Map<number, Float32Array[]>;
  /** Outputs handed over in memory, not yet covered by their receivers (runtime/outbox.ts). */
  outbox?: readonly OutboxEntry[];
}

/**
 * The StateWrite of an actor's state (the one place that says what a record holds).
 * The snapshot is taken now: call it in the state being committed.
 */
export function toStateWrite(s: VNodeRecordSource): StateWrite {
  return {
    generation: s.generation,
    epoch: s.epoch,
    type: s.def.type,
    typeVersion: s.def.version,
    snapshot: s.machine.getPersistedSnapshot(),
    tensors: s.tensors,
    stash: s.stash,
    outbox: s.outbox ?? [],
  };
}

const count = z.number().int().min(0);
const scheduleSchema = z.object({
  fwdNext: count, bwdNext: count, targetNext: count, endAt: count.nullable(),
  fwdPart: count.optional(), bwdPart: count.optional(), syncNext: count.optional(), syncPart: count.optional(),
});
const contextSchema = z.object({
  role: z.enum(['layer', 'activation', 'merge', 'loss', 'aggregator']),
  depth: count,
  checkpoint: z.object({ every: z.number().int().min(1), ms: z.number().int().min(1) }),
  arity: z.object({ inputs: z.number().int().min(1), consumers: count }).optional(),
  rounds: z.object({ every: z.number().int().min(1), replicas: z.number().int().min(1), count }).optional(),
  schedule: scheduleSchema,
  // Every stored snapshot is a checkpoint: nothing applied is outside it.
  sinceCheckpoint: z.literal(0),
  captured: scheduleSchema,
  applied: count,
  duplicates: count,
  rejected: count,
  epoch: count,
  // Every stored snapshot is taken between messages.
  inHand: z.null(),
});
const snapshotSchema = z.object({
  status: z.literal('active'),
  value: z.enum(RESTORABLE_STATES),
  context: contextSchema,
});

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const describe = (err: z.ZodError) =>
  err.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');

/**
 * A stored machine snapshot checked to be one this code can resume, rebuilt from the
 * checked fields only (no children, no history: this machine has neither).
 */
export function parseMachineSnapshot(raw: unknown): Parsed<VNodeMachineSnapshot> {
  const r = snapshotSchema.safeParse(raw);
  if (!r.success) return { ok: false, error: `not a VNode machine snapshot (${describe(r.error)})` };
  const snapshot = { status: 'active', value: r.data.value, context: r.data.context as VNodeMachineContext, children: {}, historyValue: {} };
  return { ok: true, value: snapshot as unknown as VNodeMachineSnapshot };
}

/** How far a VNode has come, as its committed record says. */
export interface VNodeProgress {
  schedule: ScheduleState;
  /** Backward updates applied (layers) or losses computed (loss VNodes). */
  applied: number;
  /** Its schedule is complete: it awaits no further input this run. */
  complete: boolean;
}

/**
 * The progress a stored record holds. With `expect`, a record whose role or pipeline
 * depth is not the model's is refused too.
 */
export function readProgress(meta: Pick<StateMeta, 'snapshot'>, expect?: { role: Role; depth: number }): Parsed<VNodeProgress> {
  const parsed = parseMachineSnapshot(meta.snapshot);
  if (!parsed.ok) return parsed;
  const c = parsed.value.context;
  if (expect && (c.role !== expect.role || c.depth !== expect.depth)) {
    return { ok: false, error: `stored as a ${c.role} of pipeline depth ${c.depth}, the model says a ${expect.role} of depth ${expect.depth}` };
  }
  return { ok: true, value: { schedule: c.schedule, applied: c.applied, complete: nextInput(c.role, c.schedule, c.depth, c.rounds) === null } };
}
