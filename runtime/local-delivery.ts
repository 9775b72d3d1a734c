/**
 * Local delivery: a message whose receiver runs in this process (on the same NATS
 * connection) is handed to it in memory as well as published to its durable mailbox.
 *
 * Durability does not change: the JetStream copy is still published, the sender's
 * checkpoint still waits for its ack, and a restored VNode still replays from its
 * mailbox. What changes is that a co-located receiver need not wait for the copy to
 * come back through nats-server, nor parse, validate and verify bytes its own process
 * produced: it applies the message in hand (the very tensor the sender computed,
 * never written to after) and, when the JetStream copy arrives, recognises it by its
 * `Nats-Msg-Id` and holds it like any duplicate, to be acked by the checkpoint that
 * covers it (invariant 2). Why it is safe when things fail:
 *
 * - the receiver commits a checkpoint over a message whose copy is not stored yet,
 *   and the process dies: the sender had not acked the input that produced it (its
 *   checkpoint waits for the copy's ack), so its new owner replays that input and
 *   re-sends the same bytes under the same id; the receiver's checkpoint covers them
 *   and drops them as a duplicate;
 * - a sender that is being replaced hands over outputs of the same inputs as its
 *   successor: the same bytes (determinism), taken once, the later one a duplicate;
 * - a receiver that is replaying its backlog takes nothing locally (the backlog holds
 *   it), a passivated or moved one is not registered: the mailbox has everything.
 *
 * Only this process's own code can offer a message, so it is trusted as the sender's
 * signature would be (docs/threat-model.md).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { MessageKind, Port } from './protocol.js';
import type { Tensor } from './tensor.js';

/** A message handed over in memory; the same fields as its JetStream copy, which has `msgId`. */
export interface LocalMessage {
  readonly local: true;
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
  return () => {
    if (map!.get(k) === r) map!.delete(k);
  };
}

/** Env switch: `DCNR_LOCAL_DELIVERY=off` sends every message through JetStream only (for measuring: `dcnr bench` hop). */
export const LOCAL_DELIVERY_ENV = 'DCNR_LOCAL_DELIVERY';
const enabled = () => process.env[LOCAL_DELIVERY_ENV] !== 'off';

/** Hand `m` to VNode `index` of `deployment` if it runs on `nc` in this process. */
export function offerLocally(nc: NatsConnection, deployment: string, index: number, m: LocalMessage): void {
  if (enabled()) receivers.get(nc)?.get(key(deployment, index))?.(m);
}
