/**
 * The one validator every inbound message passes before it touches state (invariant 5).
 *
 * It never throws: a bad message yields `{ ok: false, error }` with a sentence a
 * person can act on; the caller dead-letters it, counts it and answers it.
 */
import {
  dtypeOf,
  DTYPE_BYTES,
  DTYPES,
  Header,
  Limits,
  MESSAGE_KINDS,
  MessageKind,
  kindFitsPort,
  PROTOCOL_VERSION,
  type Port,
} from './protocol.js';
import { firstNonFinite, fromBytes, sizeOf, type Tensor } from './tensor.js';

/** A validated message, ready for a VNode. */
export interface InboundMessage {
  kind: MessageKind;
  port: Port;
  seq: number;
  epoch: number;
  from: string;
  traceparent: string | undefined;
  /** Absent for `end`. */
  tensor: Tensor | undefined;
}

/** What the receiving mailbox expects; anything else is rejected. */
export interface Expectation {
  deployment: string;
  index: number;
  /** The port this mailbox serves. */
  port: Port;
  /** Checks the tensor's shape for this port, returning an error sentence or null. */
  checkShape?: (port: Port, shape: number[]) => string | null;
  /** Override `Limits.maxTensorBytes`. */
  maxTensorBytes?: number;
}

/** Anything with `get(name)`: NATS `MsgHdrs`, or a Map-like in tests. */
export interface HeaderReader {
  get(name: string): string;
}

export type Validation = { ok: true; msg: InboundMessage } | { ok: false; error: string };

const INT = /^(0|[1-9][0-9]{0,15})$/;

const fail = (error: string): Validation => ({ ok: false, error });

/** Validate one inbound message against what its mailbox expects. */
export function validateMessage(headers: HeaderReader | undefined, payload: Uint8Array, expect: Expectation): Validation {
  if (!headers) return fail('no headers: not a DCNR message (expected Dcnr-* headers and a float32 payload)');
  const get = (name: string) => {
    try {
      return headers.get(name) ?? '';
    } catch {
      return '';
    }
  };

  const version = get(Header.Version);
  if (version === '') return fail(`missing ${Header.Version} header: not a DCNR message`);
  if (version !== String(PROTOCOL_VERSION)) {
    return fail(`protocol version ${JSON.stringify(version)} is not supported (this node speaks ${PROTOCOL_VERSION})`);
  }

  const kind = get(Header.Kind) as MessageKind;
  if (!MESSAGE_KINDS.includes(kind)) {
    return fail(`unknown message kind ${JSON.stringify(kind)} (known: ${MESSAGE_KINDS.join(', ')})`);
  }
  const port = expect.port;
  if (!kindFitsPort(kind, port)) return fail(`a ${kind} message cannot be delivered to the ${port} port`);

  const deployment = get(Header.Deployment);
  if (deployment !== expect.deployment) {
    return fail(`message is for deployment ${JSON.stringify(deployment)}, this mailbox belongs to ${JSON.stringify(expect.deployment)}`);
  }
  const vnode = get(Header.VNode);
  if (vnode !== String(expect.index)) {
    return fail(`message is for VNode ${JSON.stringify(vnode)}, this mailbox belongs to VNode ${expect.index}`);
  }

  const seqText = get(Header.Seq);
  if (!INT.test(seqText) || Number(seqText) > Limits.maxSeq) {
    return fail(`seq ${JSON.stringify(seqText)} is not a non-negative integer`);
  }
  const seq = Number(seqText);

  const epochText = get(Header.Epoch);
  const epoch = epochText === '' ? 0 : INT.test(epochText) ? Number(epochText) : NaN;
  if (!Number.isSafeInteger(epoch)) return fail(`epoch ${JSON.stringify(epochText)} is not a non-negative integer`);

  const from = get(Header.From);
  const traceparent = get(Header.TraceParent) || undefined;

  if (kind === MessageKind.End) {
    if (payload.byteLength !== 0) return fail(`an end message carries no payload, got ${payload.byteLength} bytes`);
    return { ok: true, msg: { kind, port, seq, epoch, from, traceparent, tensor: undefined } };
  }

  const dtype = get(Header.DType);
  if (!(DTYPES as readonly string[]).includes(dtype)) {
    return fail(`dtype ${JSON.stringify(dtype)} is not supported (supported: ${DTYPES.join(', ')})`);
  }
  if (dtype !== dtypeOf(kind)) return fail(`a ${kind} message carries dtype ${dtypeOf(kind)}, got ${JSON.stringify(dtype)}`);

  const shapeText = get(Header.Shape);
  const dims = shapeText.split(',');
  if (shapeText === '' || dims.length > Limits.maxRank || !dims.every((d) => INT.test(d) && Number(d) > 0)) {
    return fail(`shape ${JSON.stringify(shapeText)} is not a comma-separated list of 1..${Limits.maxRank} positive integers`);
  }
  const shape = dims.map(Number);
  const maxBytes = expect.maxTensorBytes ?? Limits.maxTensorBytes;
  const bytes = sizeOf(shape) * 4;
  if (bytes > maxBytes) return fail(`tensor of shape [${shape}] is ${bytes} bytes, over the ${maxBytes}-byte limit`);
  if (payload.byteLength > maxBytes) return fail(`payload is ${payload.byteLength} bytes, over the ${maxBytes}-byte limit`);
  if (payload.byteLength !== bytes) {
    return fail(`payload is ${payload.byteLength} bytes but shape [${shape}] of ${dtype} needs ${bytes}`);
  }
  const shapeError = expect.checkShape?.(port, shape);
  if (shapeError) return fail(shapeError);

  const data = fromBytes(payload);
  // A bytes frame is not numbers: its receiver decodes and checks it (runtime/federated/frame.ts).
  if (dtype === DTYPE_BYTES) return { ok: true, msg: { kind, port, seq, epoch, from, traceparent, tensor: { shape, data } } };
  const bad = firstNonFinite(data);
  if (bad >= 0) return fail(`tensor holds a non-finite value (${data[bad]}) at element ${bad}`);

  return { ok: true, msg: { kind, port, seq, epoch, from, traceparent, tensor: { shape, data } } };
}
