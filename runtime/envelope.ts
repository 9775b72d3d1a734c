/**
 * Building outbound DCNR messages: the one place that writes the headers the
 * validator reads. Trainers, VNode actors and tools all send through `sendMessage`.
 */
import { headers, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { dtypeOf, Header, messageId, PORT_OF_KIND, PROTOCOL_VERSION, Subject, type MessageKind, type Port } from './protocol.js';
import { localTag, messageDigest, signedMessageId, signToText, type Signer } from './security/signing.js';
import { handOverLocally, offerLocally, type LocalMessage } from './local-delivery.js';
import { publishAcked } from './publisher.js';
import { toBytes, type Tensor } from './tensor.js';

export interface Envelope {
  deployment: string;
  /** Index of the receiving VNode. */
  to: number;
  kind: MessageKind;
  /** The receiver's port (a graph VNode has one per input and per consumer). @default the kind's slot-0 port */
  port?: Port;
  seq: number;
  /** Sender's ownership epoch (0 for the trainer). */
  epoch: number;
  /** Sender id: a VNode id or `trainer`. */
  from: string;
  /** Absent only for `end`. */
  tensor?: Tensor;
  traceparent?: string;
}

/** The headers of an envelope. */
export function envelopeHeaders(e: Envelope): MsgHdrs {
  const h = headers();
  h.set(Header.Version, String(PROTOCOL_VERSION));
  h.set(Header.Kind, e.kind);
  h.set(Header.Deployment, e.deployment);
  h.set(Header.VNode, String(e.to));
  h.set(Header.Seq, String(e.seq));
  h.set(Header.Epoch, String(e.epoch));
  h.set(Header.From, e.from);
  if (e.tensor) {
    h.set(Header.Shape, e.tensor.shape.join(','));
    h.set(Header.DType, dtypeOf(e.kind));
  }
  if (e.traceparent) h.set(Header.TraceParent, e.traceparent);
  return h;
}

/** Bytes `h` takes on the wire: `NATS/1.0\r\n`, `k: v\r\n` each, `\r\n`. */
function headerBytes(h: MsgHdrs): number {
  let n = 'NATS/1.0\r\n\r\n'.length;
  for (const [k, vs] of h) for (const v of vs) n += Buffer.byteLength(`${k}: ${v}\r\n`);
  return n;
}

/**
 * Publish to the receiver's durable mailbox; resolves once the stream has stored it
 * (runtime/publisher.ts). A receiver running in this process on the same connection is
 * also handed the message in memory at once (runtime/local-delivery.ts). The message id (`Header.MsgId`)
 * names it — re-sending the same (deployment, to, port, kind, seq) stores it again, and the
 * receiver's watermark drops it. With a `signer` (auth on) the message is signed and its id
 * carries the signature's tag.
 *
 * Throws, before publishing, when the message would exceed the server's
 * `max_payload` (1 MiB unless configured; DCNR's own servers use 8 MiB): retrying
 * cannot help, so the error says what to change.
 */
export async function sendMessage(nc: NatsConnection, e: Envelope, signer?: Signer): Promise<void> {
  const port = portOf(e);
  const payload = e.tensor ? toBytes(e.tensor.data) : new Uint8Array(0);
  const hdrs = envelopeHeaders(e);
  let msgID = messageId(e.deployment, e.to, port, e.kind, e.seq);
  if (signer) {
    const digest = messageDigest({ ...e, shape: e.tensor ? e.tensor.shape.join(',') : '' }, payload);
    const signature = signToText(signer, digest);
    hdrs.set(Header.Signer, signer.publicKey);
    hdrs.set(Header.Signature, signature);
    hdrs.set(Header.LocalTag, localTag(digest));
    msgID = signedMessageId(msgID, signature);
  }
  hdrs.set(Header.MsgId, msgID);
  const max = nc.info?.max_payload;
  if (max !== undefined && payload.byteLength + headerBytes(hdrs) > max) {
    throw new Error(
      `cannot send ${e.kind} seq ${e.seq} to VNode ${e.to} of ${e.deployment}: its tensor [${e.tensor?.shape}] is ${mib(payload.byteLength)} ` +
        `and the NATS server's max_payload is ${mib(max)}; raise max_payload in the server's config file (e.g. \`max_payload: 8MB\`, as the config dcnr auth init writes does) or use a smaller batch`,
    );
  }
  const stored = publishAcked(nc, Subject.mailbox(e.deployment, e.to, port), payload, hdrs);
  // A receiver in this process takes it now (runtime/local-delivery.ts); the copy is on its way.
  offerLocally(nc, e.deployment, e.to, localMessage(e, msgID, true));
  await stored;
}

/**
 * Hand a VNode's output to its receiver in memory only, if the receiver runs in this
 * process on `nc` (runtime/local-delivery.ts): nothing is published, and the sender
 * keeps it in its outbox (runtime/outbox.ts). False: the receiver is not here (or local
 * edges are off) — publish it with `sendMessage`.
 */
export function handOver(nc: NatsConnection, e: Envelope): boolean {
  const id = messageId(e.deployment, e.to, portOf(e), e.kind, e.seq);
  return handOverLocally(nc, e.deployment, e.to, localMessage(e, id, false));
}

function localMessage(e: Envelope, msgId: string, copy: boolean): LocalMessage {
  return { local: true, copy, msgId, kind: e.kind, port: portOf(e), seq: e.seq, epoch: e.epoch, from: e.from, tensor: e.tensor, traceparent: e.traceparent };
}

const portOf = (e: Envelope): Port => e.port ?? PORT_OF_KIND[e.kind];

const mib = (bytes: number) => `${bytes} bytes (${(bytes / 1024 / 1024).toFixed(2)} MiB)`;
