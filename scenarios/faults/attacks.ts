/**
 * What the attack faults (hostile-client, rogue-pnode) share: connecting as an
 * attacker, telling a refusal by nats-server from a write that went through, and a
 * well-formed tensor message for a VNode's mailbox.
 */
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { envelopeHeaders } from '../../runtime/envelope.js';
import { Bucket, Header, ownerKey, Subject, type MessageKind } from '../../runtime/protocol.js';
import { issueUser, type Authority } from '../../runtime/security/authority.js';
import type { Role } from '../../runtime/security/roles.js';
import { messageDigest, signerFromCreds, signToText, type Signer } from '../../runtime/security/signing.js';
import type { Attack } from './types.js';

/** Try to connect (no reconnects); the connection, or the error's message. */
export async function tryConnect(url: string, creds?: string): Promise<NatsConnection | string> {
  try {
    return await connect({ servers: url.split(','), name: 'dcnr-attacker', maxReconnectAttempts: 0, ...(creds ? { authenticator: credsAuthenticator(new TextEncoder().encode(creds)) } : {}) });
  } catch (err) {
    return (err as Error).message;
  }
}

/** An attacker's credentials for `role` under `name`, issued by `authority` (stolen, or admitted). */
export async function attackerCreds(authority: Authority, role: Role, name: string): Promise<{ creds: string; signer: Signer }> {
  const issued = await issueUser(authority, role, name);
  return { creds: issued.creds!, signer: signerFromCreds(issued.creds!) };
}

const violation = /permissions violation|authorization/i;

/** Run `act`; refused when it fails with a permissions violation (nats-server said no). */
export async function serverRefuses(name: string, act: () => Promise<unknown>): Promise<Attack> {
  try {
    await act();
    return { name, refused: false, detail: 'nats-server let it through' };
  } catch (err) {
    const m = (err as Error).message;
    return { name, refused: violation.test(m), detail: violation.test(m) ? 'refused by nats-server (permissions)' : `failed otherwise: ${m}` };
  }
}

/** A KV write of `value` under `key` (a put is a publish to `$KV.<bucket>.<key>`). */
export const kvWrite = async (nc: NatsConnection, bucket: string, key: string, value: string) => (await new Kvm(nc).open(bucket)).put(key, value);

/** A core publish that expects an answer: refused publishes fail with the violation, allowed ones with "no responders". */
export const coreRequest = (nc: NatsConnection, subject: string, data: string) => nc.request(subject, data, { timeout: 3000 });

/** The current epoch of VNode `index` (0 when unknown). */
export async function currentEpoch(nc: NatsConnection, deployment: string, index: number): Promise<number> {
  const e = await (await new Kvm(nc).open(Bucket.Owners)).get(ownerKey(deployment, index));
  try {
    return e && e.operation === 'PUT' ? Number((e.json() as { epoch?: unknown }).epoch) || 0 : 0;
  } catch {
    return 0;
  }
}

/**
 * Publish a well-formed tensor message into VNode `to`'s mailbox, claiming to be `from`
 * at `epoch`, signed by `signer` (or unsigned), under message id `msgID`.
 */
export async function publishTensor(nc: NatsConnection, o: { deployment: string; to: number; kind: MessageKind; port: 'fwd' | 'bwd' | 'target'; seq: number; epoch: number; from: string; rows: number; cols: number; signer?: Signer; msgID: string }): Promise<void> {
  const tensor = { shape: [o.rows, o.cols], data: new Float32Array(o.rows * o.cols).fill(0.5) };
  const h = envelopeHeaders({ deployment: o.deployment, to: o.to, kind: o.kind, seq: o.seq, epoch: o.epoch, from: o.from, tensor });
  const payload = new Uint8Array(tensor.data.buffer);
  if (o.signer) {
    h.set(Header.Signer, o.signer.publicKey);
    h.set(Header.Signature, signToText(o.signer, messageDigest({ deployment: o.deployment, to: o.to, kind: o.kind, seq: o.seq, epoch: o.epoch, from: o.from, shape: tensor.shape.join(',') }, payload)));
  }
  await jetstream(nc).publish(Subject.mailbox(o.deployment, o.to, o.port), payload, { headers: h, msgID: o.msgID });
}
