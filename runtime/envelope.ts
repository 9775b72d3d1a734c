/**
 * Building outbound DCNR messages: the one place that writes the headers the
 * validator reads. Trainers, VNode actors and tools all send through `sendMessage`.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import { headers, type MsgHdrs } from '@nats-io/transport-node';
import { DTYPE_F32, Header, messageId, PORT_OF_KIND, PROTOCOL_VERSION, Subject, type MessageKind } from './protocol.js';
import { toBytes, type Tensor } from './tensor.js';

export interface Envelope {
  deployment: string;
  /** Index of the receiving VNode. */
  to: number;
  kind: MessageKind;
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
    h.set(Header.DType, DTYPE_F32);
  }
  if (e.traceparent) h.set(Header.TraceParent, e.traceparent);
  return h;
}

/**
 * Publish to the receiver's durable mailbox and wait for the stream's ack. The
 * message id makes re-sending the same (deployment, to, port, kind, seq) a no-op.
 */
export async function sendMessage(js: JetStreamClient, e: Envelope): Promise<void> {
  const port = PORT_OF_KIND[e.kind];
  await js.publish(Subject.mailbox(e.deployment, e.to, port), e.tensor ? toBytes(e.tensor.data) : new Uint8Array(0), {
    headers: envelopeHeaders(e),
    msgID: messageId(e.deployment, e.to, port, e.kind, e.seq),
  });
}
