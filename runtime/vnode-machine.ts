/**
 * The lifecycle of a VNode as an xstate v5 machine: it decides, the host does the IO.
 *
 *                    ┌───────────── [scheduleComplete] ─────────────▶ done ──STOP──▶ stopped
 *   activating ──ACTIVATED──▶ waiting ◀──────────────ACKED──── skipping      (duplicate: ack it)
 *                              │  │ ▲  ◀─────────────ACKED──── rejecting.*   (dead-letter, ack it)
 *                              │  │ └───PERSISTED─── persisting ◀──PUBLISHED── publishing ◀──COMPUTED── processing
 *                              │  └─ MESSAGE ─┬─ [wrongPort]  ▶ rejecting.wrongPort                      ▲
 *                              │              ├─ [duplicate]  ▶ skipping                                  │
 *                              │              ├─ [outOfOrder] ▶ rejecting.outOfOrder                      │
 *                              │              ├─ [doesNotFit] ▶ rejecting.doesNotFit                      │
 *                              │              └─ (accepted) ─────────────────────────────────────────────┘
 *                              ├─ INVALID ▶ rejecting.invalid       ├─ PASSIVATE ▶ passivated
 *   every live state: FENCED ▶ fenced · FAILED ▶ failed · STOP ▶ stopped   (the four final states)
 *   waiting / persisting / done: RESTORED (a stored snapshot resumed under a new epoch)
 *
 * What the VNode waits for is `awaitedInput(snapshot)`: the schedule rule of
 * schedule.ts applied to the role and pipeline depth the machine was given as input
 * (kept in context, so a stored snapshot carries them). The host pulls that input,
 * validates it (validate.ts), sends MESSAGE, and acts on the state the machine moved
 * to: ack a duplicate (`skipping`), dead-letter a bad one (`rejecting.*`), compute
 * (`processing`), publish the outputs (`publishing`), commit the state and then ack
 * (`persisting`). It reports each step back (COMPUTED, PUBLISHED, PERSISTED, ACKED).
 *
 * The snapshot the host stores is taken in `persisting` (the counters of the state
 * being written) or, at activation, in `waiting`/`done`; restored through
 * `createActor(vnodeMachine, { snapshot })` + RESTORED it goes on from `waiting`.
 * No `after` timers and no invoked children: nothing here needs re-arming on restore.
 *
 * Planned (checkpoints every K messages): PUBLISHED will choose by a guard between
 * `persisting` (a checkpoint is due) and `waiting` (effect kept in memory, ack
 * deferred); PERSISTED then acks every message the checkpoint covers.
 */
import { assign, setup, type SnapshotFrom } from 'xstate';
import { PORT_OF_KIND, type MessageKind, type Port } from './protocol.js';
import { advance, initialSchedule, nextInput, type Role, type ScheduleState } from './schedule.js';

/** What a VNode machine is created with. */
export interface VNodeMachineInput {
  role: Role;
  /** The model's pipeline depth (schedule.ts). */
  depth: number;
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
}

export type VNodeMachineEvent =
  | { type: 'ACTIVATED'; epoch: number }
  | { type: 'RESTORED'; epoch: number }
  /**
   * A valid message pulled from `port`. `fits`: the host's check against its state
   * (a backward or target has the rows of its forward) — decided on only if the
   * message is the one the schedule awaits.
   */
  | { type: 'MESSAGE'; port: Port; kind: MessageKind; seq: number; fits: boolean }
  /** A message the validator refused. */
  | { type: 'INVALID' }
  /** The skipped or rejected message was acked (and dead-lettered). */
  | { type: 'ACKED' }
  | { type: 'COMPUTED' }
  | { type: 'PUBLISHED' }
  | { type: 'PERSISTED' }
  | { type: 'PASSIVATE' }
  | { type: 'FAILED'; error: string }
  | { type: 'FENCED' }
  | { type: 'STOP' };

/** The input a VNode needs next, or null when its schedule is complete. */
const awaited = (c: VNodeMachineContext) => nextInput(c.role, c.schedule, c.depth);
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
      return !m || !want || m.port !== want.port || PORT_OF_KIND[m.kind] !== want.port;
    },
    /** Its seq was applied already: a redelivery or a re-sent output. */
    duplicate: ({ context, event }) => (asMessage(event)?.seq ?? Infinity) < awaited(context)!.seq,
    /** Ahead of the schedule: a genuine sender never does this. */
    outOfOrder: ({ context, event }) => (asMessage(event)?.seq ?? -Infinity) > awaited(context)!.seq,
    doesNotFit: ({ event }) => asMessage(event)?.fits === false,
  },
  actions: {
    setEpoch: assign({ epoch: ({ event }) => ('epoch' in event ? event.epoch : 0) }),
    countDuplicate: assign({ duplicates: ({ context }) => context.duplicates + 1 }),
    countRejected: assign({ rejected: ({ context }) => context.rejected + 1 }),
    /** Apply the message in hand to the schedule: what it awaited is now consumed. */
    advanceSchedule: assign(({ context }) => {
      // The message in hand is the awaited one (its guards said so); only its kind is
      // not in `want`: on the fwd port an `end` may stand where a forward was awaited.
      const want = awaited(context)!;
      const kind = context.inHand!;
      const applied = kind === 'bwd' || kind === 'target' ? context.applied + 1 : context.applied;
      return { schedule: advance(context.schedule, kind, want.seq), applied, inHand: null };
    }),
  },
}).createMachine({
  id: 'vnode',
  initial: 'activating',
  context: ({ input }) => ({
    role: input.role,
    depth: input.depth,
    schedule: initialSchedule(),
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
          { guard: 'duplicate', target: 'skipping', actions: 'countDuplicate' },
          { guard: 'outOfOrder', target: 'rejecting.outOfOrder', actions: 'countRejected' },
          { guard: 'doesNotFit', target: 'rejecting.doesNotFit', actions: 'countRejected' },
          { target: 'processing', actions: assign({ inHand: ({ event }) => asMessage(event)!.kind }) },
        ],
        INVALID: { target: 'rejecting.invalid', actions: 'countRejected' },
        RESTORED: { actions: 'setEpoch' },
        PASSIVATE: 'passivated',
        ...whileLive,
      },
    },
    skipping: { on: { ACKED: 'waiting', ...whileLive } },
    rejecting: {
      initial: 'invalid',
      states: { invalid: {}, wrongPort: {}, outOfOrder: {}, doesNotFit: {} },
      on: { ACKED: 'waiting', ...whileLive },
    },
    processing: { on: { COMPUTED: { target: 'publishing', actions: 'advanceSchedule' }, ...whileLive } },
    // Outputs go out before the commit: if the VNode dies in between, the re-run sends
    // the same bytes under the same message ids, and downstream drops them.
    publishing: { on: { PUBLISHED: 'persisting', ...whileLive } },
    persisting: {
      on: {
        PERSISTED: 'waiting',
        // A snapshot stored in `persisting` was committed: restored, it waits for the next input.
        RESTORED: { target: 'waiting', actions: 'setEpoch' },
        ...whileLive,
      },
    },
    // Not final: a finished VNode can still be re-activated (moved, restarted) and stopped.
    done: { on: { RESTORED: { actions: 'setEpoch' }, ...whileLive } },
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
export const RESTORABLE_STATES = ['waiting', 'persisting', 'done'] as const;
