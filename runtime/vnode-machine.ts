/**
 * The lifecycle of a VNode as an xstate v5 machine.
 *
 *   activating ──ACTIVATED──▶ ready ──RECEIVE──▶ processing ──COMPUTED──▶ persisting ──PERSISTED──▶ ready
 *        │                      │ ▲ REJECTED/DUPLICATE ─┘                      │
 *        └──────FENCED──────────┴────────────────────────▶ fenced ◀─FENCED─────┘
 *                               └──STOP──▶ stopped          processing/persisting ──FAILED──▶ failed
 *
 * The machine is pure: its context is the VNode's schedule and counters, and its
 * transitions say what happened. Loading, computing, sending, persisting and acking
 * are the host's job (vnode-actor.ts). The host stores `getPersistedSnapshot()` —
 * taken in `persisting`, i.e. with the counters of the state being written — beside
 * the tensors, and restores it with `createActor(machine, { snapshot })` + RESTORED.
 * No `after` timers and no invoked children: nothing here needs re-arming on restore.
 */
import { assign, setup } from 'xstate';
import type { MessageKind } from './protocol.js';
import { advance, initialSchedule, type ScheduleState } from './schedule.js';

export interface VNodeMachineContext {
  schedule: ScheduleState;
  /** Backward updates applied (layers) or losses computed (loss VNodes). */
  applied: number;
  /** Re-delivered or re-sent messages skipped because their seq was already applied. */
  duplicates: number;
  /** Messages rejected by the validator while this VNode was live. */
  rejected: number;
  /** Ownership epoch of the owner that wrote this snapshot. */
  epoch: number;
}

export type VNodeMachineEvent =
  | { type: 'ACTIVATED'; epoch: number }
  | { type: 'RESTORED'; epoch: number }
  | { type: 'RECEIVE'; kind: MessageKind; seq: number }
  | { type: 'COMPUTED'; kind: MessageKind; seq: number }
  | { type: 'PERSISTED' }
  | { type: 'DUPLICATE' }
  | { type: 'REJECTED' }
  | { type: 'FAILED'; error: string }
  | { type: 'FENCED' }
  | { type: 'STOP' };

export const vnodeMachine = setup({
  types: {
    context: {} as VNodeMachineContext,
    events: {} as VNodeMachineEvent,
  },
  actions: {
    setEpoch: assign({ epoch: ({ event }) => ('epoch' in event ? event.epoch : 0) }),
    advanceSchedule: assign(({ context, event }) => {
      if (event.type !== 'COMPUTED') return {};
      const applied = event.kind === 'bwd' || event.kind === 'target' ? context.applied + 1 : context.applied;
      return { schedule: advance(context.schedule, event.kind, event.seq), applied };
    }),
    countDuplicate: assign({ duplicates: ({ context }) => context.duplicates + 1 }),
    countRejected: assign({ rejected: ({ context }) => context.rejected + 1 }),
  },
}).createMachine({
  id: 'vnode',
  initial: 'activating',
  context: { schedule: initialSchedule(), applied: 0, duplicates: 0, rejected: 0, epoch: 0 },
  states: {
    activating: {
      on: {
        ACTIVATED: { target: 'ready', actions: 'setEpoch' },
        FENCED: 'fenced',
        STOP: 'stopped',
      },
    },
    ready: {
      on: {
        RECEIVE: 'processing',
        DUPLICATE: { actions: 'countDuplicate' },
        REJECTED: { actions: 'countRejected' },
        RESTORED: { actions: 'setEpoch' },
        FENCED: 'fenced',
        STOP: 'stopped',
      },
    },
    processing: {
      on: {
        COMPUTED: { target: 'persisting', actions: 'advanceSchedule' },
        FAILED: 'failed',
        FENCED: 'fenced',
        STOP: 'stopped',
      },
    },
    persisting: {
      on: {
        PERSISTED: 'ready',
        // A snapshot stored in `persisting` was committed: restoring it means ready.
        RESTORED: { target: 'ready', actions: 'setEpoch' },
        FAILED: 'failed',
        FENCED: 'fenced',
        STOP: 'stopped',
      },
    },
    fenced: { type: 'final' },
    // The in-memory state may be ahead of what is stored: the host discards this
    // actor and restores the VNode from KV.
    failed: { type: 'final' },
    stopped: { type: 'final' },
  },
});
