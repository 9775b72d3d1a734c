/**
 * Local delivery: a message whose receiver runs in this process (on the same NATS
 * connection) is handed to it in memory.
 *
 * Between two VNodes (`handOverLocally`), that is the only copy: it is never stored in
 * JetStream. The sender keeps it in its outbox (runtime/outbox.ts), which is part of its
 * checkpoint, until the receiver announces a committed checkpoint that covers it
 * (`announceCovering`); if the receiver leaves the process first, the sender publishes
 * it to the receiver's durable mailbox (`watchLocalPeers` → `gone`). Why that keeps
 * exactly-once: runtime/outbox.ts, docs/checkpoints.md "Local edges".
 *
 * The trainer's feeds to VNodes of its process go in memory only too
 * (trainer/local-feed.ts): it keeps no outbox, it makes a feed again from (seed, seq).
 * With `copy` (and for a message published by anyone else on this connection:
 * `sendMessage`), a message is published and also offered in memory
 * (`offerLocally`, with `copy: true`): the receiver applies the tensor in hand and,
 * when the JetStream copy arrives, recognises it by its message id (`Dcnr-Msg-Id`)
 * and holds it like any duplicate, to be acked by the checkpoint that covers it.
 *
 * Only this process's own code can offer a message, so it is trusted as the sender's
 * signature would be (docs/threat-model.md).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { MessageKind, Port } from './protocol.js';
import type { ScheduleState } from './schedule.js';
import type { Tensor } from './tensor.js';

/** A message handed over in memory; the same fields as its JetStream copy, which has `msgId`. */
export interface LocalMessage {
  readonly local: true;
  /** A JetStream copy was published too (it will come through the mailbox, to be held as a duplicate). */
  readonly copy: boolean;
  readonly msgId: string;
  readonly kind: MessageKind;
  readonly port: Port;
  readonly seq: number;
  readonly epoch: number;
  readonly from: string;
  readonly tensor: Tensor | undefined;
  readonly traceparent: string | undefined;
}

/** What a registered receiver does with an offer (take it, or drop it: the mailbox has a copy). */
export type LocalReceiver = (m: LocalMessage) => void;

const receivers = new WeakMap<NatsConnection, Map<string, LocalReceiver>>();
/** Receivers that finished their run (they send nothing more), by key. */
const finished = new WeakMap<NatsConnection, Set<string>>();
const key = (deployment: string, index: number) => `${deployment}\u0000${index}`;

/**
 * Receive the local offers for VNode `index` of `deployment` made on `nc`; returns the
 * unregister function. One receiver per VNode: a newer registration replaces an older.
 */
export function receiveLocally(nc: NatsConnection, deployment: string, index: number, r: LocalReceiver): () => void {
  let map = receivers.get(nc);
  if (!map) receivers.set(nc, (map = new Map()));
  const k = key(deployment, index);
  map.set(k, r);
  finished.get(nc)?.delete(k);
  return () => {
    if (map!.get(k) !== r) return;
    map!.delete(k);
    finished.get(nc)?.delete(k);
    // Its senders here publish what it has not covered to its mailbox (runtime/outbox.ts).
    announceGone(nc, deployment, index);
  };
}

/**
 * Env switch `DCNR_LOCAL_DELIVERY`: `off` sends every message through JetStream only;
 * `copy` hands messages between VNodes over in memory AND publishes their JetStream
 * copies (the mechanism before local edges, kept for `dcnr bench`); anything else (the
 * default): between VNodes, in memory only.
 */
export const LOCAL_DELIVERY_ENV = 'DCNR_LOCAL_DELIVERY';
export type LocalDeliveryMode = 'off' | 'copy' | 'only';
export function localDeliveryMode(): LocalDeliveryMode {
  const v = process.env[LOCAL_DELIVERY_ENV];
  return v === 'off' ? 'off' : v === 'copy' ? 'copy' : 'only';
}

/** Hand `m` (published too: `m.copy`) to VNode `index` of `deployment` if it runs on `nc` in this process. */
export function offerLocally(nc: NatsConnection, deployment: string, index: number, m: LocalMessage): void {
  if (localDeliveryMode() !== 'off') receivers.get(nc)?.get(key(deployment, index))?.(m);
}

/**
 * Hand `m` to VNode `index` in memory ONLY, if it runs on `nc` and local edges are on;
 * false: the caller must publish it. The caller keeps it in its outbox.
 */
export function handOverLocally(nc: NatsConnection, deployment: string, index: number, m: LocalMessage): boolean {
  if (localDeliveryMode() !== 'only') return false;
  const r = receivers.get(nc)?.get(key(deployment, index));
  if (!r) return false;
  r(m);
  return true;
}

/** What the VNodes of a deployment in this process tell the senders among them. */
export interface LocalPeerEvents {
  /** VNode `index` captured a checkpoint whose schedule is `covered`; `commit` settles when it is committed, or rejects. */
  covering(index: number, covered: ScheduleState, commit: Promise<void>): void;
  /** VNode `index` stopped receiving in this process (until it registers again). */
  gone(index: number): void;
}

const peers = new WeakMap<NatsConnection, Map<string, Set<LocalPeerEvents>>>();

/** Hear the local peer events of `deployment` on `nc`; returns the unregister function. */
export function watchLocalPeers(nc: NatsConnection, deployment: string, listener: LocalPeerEvents): () => void {
  let map = peers.get(nc);
  if (!map) peers.set(nc, (map = new Map()));
  let set = map.get(deployment);
  if (!set) map.set(deployment, (set = new Set()));
  set.add(listener);
  return () => void set!.delete(listener);
}

/** VNode `index` of `deployment` captured a checkpoint covering `covered`, committed when `commit` settles: its senders here may forget what it holds then. */
export function announceCovering(nc: NatsConnection, deployment: string, index: number, covered: ScheduleState, commit: Promise<void>): void {
  for (const l of [...(peers.get(nc)?.get(deployment) ?? [])]) l.covering(index, covered, commit);
}

function announceGone(nc: NatsConnection, deployment: string, index: number): void {
  for (const l of [...(peers.get(nc)?.get(deployment) ?? [])]) l.gone(index);
}

/** VNode `index` of `deployment` on `nc` has finished its run: it sends nothing more. */
export function finishLocally(nc: NatsConnection, deployment: string, index: number): void {
  let set = finished.get(nc);
  if (!set) finished.set(nc, (set = new Set()));
  set.add(key(deployment, index));
}

/** Whether a VNode of `deployment` other than `index` runs on `nc` and has not finished (it may still send). */
export function peersWorking(nc: NatsConnection, deployment: string, index: number): boolean {
  const prefix = `${deployment}\u0000`;
  const self = key(deployment, index);
  const done = finished.get(nc);
  for (const k of receivers.get(nc)?.keys() ?? []) if (k.startsWith(prefix) && k !== self && !done?.has(k)) return true;
  return false;
}
