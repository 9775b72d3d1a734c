/**
 * The lifecycle of a VNode as an xstate v5 machine: it decides, the host does the IO.
 *
 *                    ┌──────────────── [scheduleComplete] ────────────────▶ done ──STOP──▶ stopped
 *   activating ──ACTIVATED──▶ waiting ◀───SKIPPED──── skipping.covered | skipping.held   (duplicate)
 *                              │ │ │ ▲ ◀───ACKED────── rejecting.*                       (dead-letter, ack)
 *                              │ │ │ └──CAPTURED── checkpointing ◀─[checkpointDue]─┐
 *                              │ │ │                     ▲                         PUBLISHED ◀── publishing ◀──COMPUTED── processing
 *                              │ │ │                     │                         └─(else: kept in memory)─▶ waiting      ▲
 *                              │ │ └─ TICK [checkpointDue: time, or a flush] ────────┘                                   │
 *                              │ └─ MESSAGE ─┬─ [wrongPort]  ▶ rejecting.wrongPort                                       │
 *                              │             ├─ [duplicate]  ▶ skipping.covered (a captured checkpoint covers it) / .held │
 *                              │             ├─ [outOfOrder] ▶ rejecting.outOfOrder                                      │
 *                              │             ├─ [doesNotFit] ▶ rejecting.doesNotFit                                      │
 *                              │             └─ (accepted) ──────────────────────────────────────────────────────────────┘
 *                              ├─ INVALID ▶ rejecting.invalid       ├─ PASSIVATE [nothing uncheckpointed] ▶ passivated
 *   every live state: FENCED ▶ fenced · FAILED ▶ failed · STOP ▶ stopped   (the four final states)
 *   waiting / checkpointing / done: RESTORED (a stored snapshot resumed under a new epoch)
 *
 * What the VNode waits for is `awaitedInput(snapshot)`: the schedule rule of
 * schedule.ts applied to the role and pipeline depth the machine was given as input
 * (kept in context, so a stored snapshot carries them). The host pulls that input,
 * validates it (validate.ts), sends MESSAGE, and acts on the state the machine moved
 * to: skip a duplicate (`skipping.*`), dead-letter a bad one (`rejecting.*`), compute
 * (`processing`), publish the outputs (`publishing`), and — when `checkpointDue` says
 * so — capture a checkpoint (`checkpointing`). It reports each step back.
 *
 * Checkpoints (docs/checkpoints.md): between them the effect of applied messages lives
 * in memory only and their acks are held; a checkpoint is due after `checkpoint.every`
 * applied messages, after `checkpoint.ms` (PUBLISHED and TICK carry the time since the
 * last one) — but not sooner than the host's `minGapMs` after the last (big states:
 * committing stays a small share of the time) — on a flush (stop, passivation), and
 * always when the schedule completes.
 * The snapshot taken in `checkpointing` IS the checkpoint; the host commits it by CAS
 * (off the hot path) and acks every message it covers once committed. A duplicate a
 * captured checkpoint covers (`skipping.covered`) is acked with that checkpoint; one it
 * does not (`skipping.held`: applied since, redelivered) is held like the message it
 * repeats — never acked early.
 *
 * Restored through `createActor(vnodeMachine, { snapshot })` + RESTORED, a snapshot
 * goes on from `waiting`. No `after` timers and no invoked children: nothing here
 * needs re-arming on restore.
 */
import { and, assign, setup, type SnapshotFrom } from 'xstate';
import { kindFitsPort, type MessageKind, type Port } from './protocol.js';
import { advance, CHAIN_ARITY, completesUpdate, initialSchedule, nextInput, portNext, type Arity, type Role, type Rounds, type ScheduleState } from './schedule.js';

/** What a VNode machine is created with. */
export interface VNodeMachineInput {
  role: Role;
  /** The model's pipeline depth (schedule.ts). */
  depth: number;
  /** When checkpoints are due: every `every` applied messages, or `ms` after the last one. */
  checkpoint: CheckpointPolicy;
  /** Its inputs and consumers in the model's graph (schedule.ts). @default one of each (a chain) */
  arity?: Arity;
  /** Federated rounds (schedule.ts `Rounds`): a replica's layer with parameters, or an aggregator. @default none */
  rounds?: Rounds;
}

export interface CheckpointPolicy {
  every: number;
  ms: number;
}

export interface VNodeMachineContext extends VNodeMachineInput {
  schedule: ScheduleState;
  /** Backward updates applied (layers) or losses computed (loss VNodes). */
  applied: number;
  /** Re-delivered or re-sent messages skipped because their seq was already applied. */
  duplicates: number;
  /** Messages rejected (invalid, out of order, wrong port, not fitting the state) while this VNode was live. */
  rejected: number;
  /** Ownership epoch of the owner that wrote this snapshot. */
  epoch: number;
  /** Kind of the accepted message being processed; null between messages (and in every stored snapshot). */
  inHand: MessageKind | null;
  /** Messages applied since the last captured checkpoint (0 in every stored snapshot). */
  sinceCheckpoint: number;
  /** The schedule the last captured checkpoint holds: inputs below it are covered. */
  captured: ScheduleState;
}

export type VNodeMachineEvent =
  | { type: 'ACTIVATED'; epoch: number }
  /** A stored snapshot resumed under `epoch`, with the deployment's checkpoint policy now. */
  | { type: 'RESTORED'; epoch: number; checkpoint: CheckpointPolicy }
  /**
   * A valid message pulled from `port`. `fits`: the host's check against its state
   * (a backward or target has the rows of its forward) — decided on only if the
   * message is the one the schedule awaits.
   */
  | { type: 'MESSAGE'; port: Port; kind: MessageKind; seq: number; fits: boolean }
  /** A message the validator refused. */
  | { type: 'INVALID' }
  /** The rejected message was dead-lettered and acked. */
  | { type: 'ACKED' }
  /** The duplicate was acked with its checkpoint (covered) or held for the next (held). */
  | { type: 'SKIPPED' }
  | { type: 'COMPUTED' }
  /**
   * The outputs were sent. `sinceCheckpointMs`: time since the last captured checkpoint;
   * `minGapMs`: the least time between two (the host derives it from how long commits
   * take, so that committing stays a small share of the time; 0 = none).
   */
  | { type: 'PUBLISHED'; sinceCheckpointMs: number; minGapMs?: number }
  /** No awaited message came for a while. `flush`: the host wants a checkpoint of what is applied (stop, passivation). */
  | { type: 'TICK'; sinceCheckpointMs: number; minGapMs?: number; flush?: boolean }
  /** The host took this state's snapshot as a checkpoint (its commit runs in the background). */
  | { type: 'CAPTURED' }
  | { type: 'PASSIVATE' }
  | { type: 'FAILED'; error: string }
  | { type: 'FENCED' }
  | { type: 'STOP' };

/** The input a VNode needs next, or null when its schedule is complete. */
const awaited = (c: VNodeMachineContext) => nextInput(c.role, c.schedule, c.depth, c.rounds);
type Message = Extract<VNodeMachineEvent, { type: 'MESSAGE' }>;
const asMessage = (e: VNodeMachineEvent): Message | null => (e.type === 'MESSAGE' ? e : null);

/** Events every live (non-final) state answers the same way. */
const whileLive = { FENCED: 'fenced', FAILED: 'failed', STOP: 'stopped' } as const;

export const vnodeMachine = setup({
  types: {
    input: {} as VNodeMachineInput,
    context: {} as VNodeMachineContext,
    events: {} as VNodeMachineEvent,
  },
  guards: {
    scheduleComplete: ({ context }) => awaited(context) === null,
    /** Not a message for the port the VNode waits on (the validator checks this too). */
    wrongPort: ({ context, event }) => {
      const m = asMessage(event);
      const want = awaited(context);
      return !m || !want || m.port !== want.port || !kindFitsPort(m.kind, want.port);
    },
    /** Its seq was applied already: a redelivery or a re-sent output. */
    duplicate: ({ context, event }) => (asMessage(event)?.seq ?? Infinity) < awaited(context)!.seq,
    /** Ahead of the schedule: a genuine sender never does this. */
    outOfOrder: ({ context, event }) => (asMessage(event)?.seq ?? -Infinity) > awaited(context)!.seq,
    doesNotFit: ({ event }) => asMessage(event)?.fits === false,
    /** The duplicate's seq is below what the last captured checkpoint holds on its port. */
    covered: ({ context, event }) => {
      const m = asMessage(event);
      return !!m && m.seq < coveredBelow(context.captured, m.port);
    },
    /**
     * A checkpoint is due: the schedule is complete (a finished VNode is read from KV),
     * or — with something applied since the last — the count or the time is reached,
     * or the host flushes.
     */
    checkpointDue: ({ context, event }) => {
      if (event.type === 'PUBLISHED') {
        if (awaited(context) === null) return true;
        if (event.sinceCheckpointMs < (event.minGapMs ?? 0)) return false;
        return context.sinceCheckpoint + 1 >= context.checkpoint.every || event.sinceCheckpointMs >= context.checkpoint.ms;
      }
      if (event.type === 'TICK') {
        if (context.sinceCheckpoint === 0) return false;
        if (event.flush) return true;
        return event.sinceCheckpointMs >= Math.max(context.checkpoint.ms, event.minGapMs ?? 0);
      }
      return false;
    },
    /** Nothing applied is only in memory: leaving memory loses no work. */
    allCheckpointed: ({ context }) => context.sinceCheckpoint === 0,
  },
  actions: {
    setEpoch: assign({ epoch: ({ event }) => ('epoch' in event ? event.epoch : 0) }),
    restore: assign(({ context, event }) =>
      event.type === 'RESTORED' ? { epoch: event.epoch, checkpoint: event.checkpoint, sinceCheckpoint: 0, captured: context.schedule } : {},
    ),
    /** This state is the checkpoint: what it holds is covered from now on. */
    capture: assign(({ context }) => ({ sinceCheckpoint: 0, captured: context.schedule })),
    countUncheckpointed: assign({ sinceCheckpoint: ({ context }) => context.sinceCheckpoint + 1 }),
    countDuplicate: assign({ duplicates: ({ context }) => context.duplicates + 1 }),
    countRejected: assign({ rejected: ({ context }) => context.rejected + 1 }),
    /** Apply the message in hand to the schedule: what it awaited is now consumed. */
    advanceSchedule: assign(({ context }) => {
      // The message in hand is the awaited one (its guards said so); only its kind is
      // not in `want`: on the fwd port an `end` may stand where a forward was awaited.
      // A step of several inputs or consumers is one update, counted at its last message.
      const want = awaited(context)!;
      const kind = context.inHand!;
      const arity = context.arity ?? CHAIN_ARITY;
      const applied = completesUpdate(kind, want.port, arity) ? context.applied + 1 : context.applied;
      return { schedule: advance(context.schedule, kind, want.seq, want.port, arity), applied, inHand: null };
    }),
  },
}).createMachine({
  id: 'vnode',
  initial: 'activating',
  context: ({ input }) => ({
    role: input.role,
    depth: input.depth,
    checkpoint: input.checkpoint,
    ...(input.arity ? { arity: input.arity } : {}),
    ...(input.rounds ? { rounds: input.rounds } : {}),
    schedule: initialSchedule(),
    sinceCheckpoint: 0,
    captured: initialSchedule(),
    applied: 0,
    duplicates: 0,
    rejected: 0,
    epoch: 0,
    inHand: null,
  }),
  states: {
    activating: {
      on: { ACTIVATED: { target: 'waiting', actions: 'setEpoch' }, ...whileLive },
    },
    waiting: {
      always: { guard: 'scheduleComplete', target: 'done' },
      on: {
        MESSAGE: [
          { guard: 'wrongPort', target: 'rejecting.wrongPort', actions: 'countRejected' },
          { guard: and(['duplicate', 'covered']), target: 'skipping.covered', actions: 'countDuplicate' },
          { guard: 'duplicate', target: 'skipping.held', actions: 'countDuplicate' },
          { guard: 'outOfOrder', target: 'rejecting.outOfOrder', actions: 'countRejected' },
          { guard: 'doesNotFit', target: 'rejecting.doesNotFit', actions: 'countRejected' },
          { target: 'processing', actions: assign({ inHand: ({ event }) => asMessage(event)!.kind }) },
        ],
        INVALID: { target: 'rejecting.invalid', actions: 'countRejected' },
        TICK: { guard: 'checkpointDue', target: 'checkpointing' },
        RESTORED: { actions: 'restore' },
        PASSIVATE: { guard: 'allCheckpointed', target: 'passivated' },
        ...whileLive,
      },
    },
    skipping: {
      initial: 'held',
      states: { covered: {}, held: {} },
      on: { SKIPPED: 'waiting', ...whileLive },
    },
    rejecting: {
      initial: 'invalid',
      states: { invalid: {}, wrongPort: {}, outOfOrder: {}, doesNotFit: {} },
      on: { ACKED: 'waiting', ...whileLive },
    },
    processing: { on: { COMPUTED: { target: 'publishing', actions: 'advanceSchedule' }, ...whileLive } },
    // Outputs go out before the checkpoint that covers them: if the VNode dies in
    // between, the replay sends the same bytes under the same message ids, and
    // downstream drops them.
    publishing: {
      on: {
        PUBLISHED: [{ guard: 'checkpointDue', target: 'checkpointing' }, { target: 'waiting', actions: 'countUncheckpointed' }],
        ...whileLive,
      },
    },
    checkpointing: {
      entry: 'capture',
      on: {
        CAPTURED: 'waiting',
        // A snapshot stored in `checkpointing` was committed: restored, it waits for the next input.
        RESTORED: { target: 'waiting', actions: 'restore' },
        ...whileLive,
      },
    },
    // Not final: a finished VNode can still be re-activated (moved, restarted) and stopped.
    done: { on: { RESTORED: { actions: 'restore' }, ...whileLive } },
    fenced: { type: 'final' },
    // The in-memory state may be ahead of what is stored: the host discards this
    // actor and restores the VNode from KV.
    failed: { type: 'final' },
    stopped: { type: 'final' },
    passivated: { type: 'final' },
  },
});

export type VNodeMachineSnapshot = SnapshotFrom<typeof vnodeMachine>;

/**
 * The input (port, seq) the VNode waits for, or null when it waits for none (its
 * schedule is complete, or it is busy with a message, or it has stopped).
 *
 * @example
 * const want = awaitedInput(actor.getSnapshot()); // { port: 'fwd', seq: 3 }
 */
export function awaitedInput(snapshot: VNodeMachineSnapshot): { port: Port; seq: number } | null {
  return snapshot.matches('waiting') ? awaited(snapshot.context) : null;
}

/** States a stored snapshot may be in (the ones the host persists in). */
export const RESTORABLE_STATES = ['waiting', 'checkpointing', 'done'] as const;

/** The first seq on `port` that a checkpoint holding `s` does not cover. */
export function coveredBelow(s: ScheduleState, port: Port): number {
  return portNext(s, port);
}
