/**
 * Who may have sent a message or written a state: the receiving side of
 * runtime/security/signing.ts. A VNode's outputs must be signed by the PNode that owned
 * it at the epoch the message names, in the receiver's generation of the deployment
 * (the supervisor's `dcnr_epochs` record, cached: a record of one generation never
 * changes); a trainer's feeds by the deployment's `trainerKey`.
 */
import { Kvm, type KV } from '@nats-io/kv';
import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import { Bucket, epochKey, Header, parsePort, type Port } from '../protocol.js';
import { parseEpochRecord } from '../records.js';
import { localTagValid, messageDigest, signerOf, verifySignature, type Signer } from './signing.js';

/** How a refusal of a sender that no epoch record names begins (a replaced run's VNodes still sending, or an impostor). */
export const NO_SENDER_RECORD = 'no record of who may send as';

export interface SenderCheck {
  /**
   * Null when `from` was entitled to send this; else why not (the message is rejected).
   * `expectedFrom`: who sends this kind to this VNode (`expectedSender`): a neighbour's
   * owner may not send on another's behalf.
   */
  message(h: MsgHdrs | undefined, payload: Uint8Array, m: { deployment: string; to: number; kind: string; seq: number; epoch: number; from: string; shape: string }, trainerKey: string | undefined, generation: number, expectedFrom: Sender): Promise<string | null>;
  /** The key that owned VNode `index` of that generation at `epoch`, or null when no valid record says. */
  ownerKey(deployment: string, generation: number, index: number, epoch: number): Promise<string | null>;
}

/** `ownKey`: the receiving process's own key (a message it sent itself is checked by its local tag). */
export function createSenderCheck(o: { epochs: KV; ownKey?: string }): SenderCheck {
  const ownKey = o.ownKey;
  const owners = new Map<string, string>();
  const ownerKey = async (deployment: string, generation: number, index: number, epoch: number): Promise<string | null> => {
    const key = epochKey(deployment, generation, index, epoch);
    const cached = owners.get(key);
    if (cached) return cached;
    // No waiting for a record that is not there: any signed message naming a random epoch
    // would then hold the receiving VNode up for the wait.
    const e = await o.epochs.get(key).catch(() => null);
    if (!e || e.operation !== 'PUT' || e.length === 0) return null;
    const r = parseEpochRecord(e.value);
    if (!r.ok) return null;
    if (owners.size > 100_000) owners.clear();
    owners.set(key, r.value.publicKey);
    return r.value.publicKey;
  };
  return {
    ownerKey,
    async message(h, payload, m, trainerKey, generation, expectedFrom) {
      const from = senderOf(m.from);
      if (from !== expectedFrom) return `wrong sender: ${m.kind} to VNode ${m.to} comes from ${expectedFrom === 'trainer' ? 'the trainer' : expectedFrom < 0 ? 'nobody' : `VNode ${expectedFrom}`}, not ${m.from}`;
      const signer = h?.get(Header.Signer) ?? '';
      const signature = h?.get(Header.Signature) ?? '';
      if (!signer || !signature) return 'unsigned: this network requires every message to be signed by its sender';
      const digest = messageDigest(m, payload);
      const local = ownKey !== undefined && signer === ownKey && localTagValid(digest, h?.get(Header.LocalTag) ?? '');
      if (!local && !verifySignature(signer, digest, signature)) return `bad signature from ${signer.slice(0, 12)}…`;
      let entitled: string | null;
      if (from === 'trainer') entitled = trainerKey ?? null;
      else entitled = await ownerKey(m.deployment, generation, from, m.epoch);
      if (entitled === null) return `${NO_SENDER_RECORD} ${m.from} at epoch ${m.epoch}`;
      if (entitled !== signer) return `forged sender: ${m.from} at epoch ${m.epoch} is ${entitled.slice(0, 12)}…, signed by ${signer.slice(0, 12)}…`;
      return null;
    },
  };
}

/** A message's sender: the trainer, or a VNode's index (-1: nobody sends it; -2: a `Dcnr-From` that names no VNode). */
export type Sender = 'trainer' | number;

/** Who sends on `port` of VNode `v`: the trainer (the dataset's feeds, targets and the first `end`), the producer of that input, or the consumer of that gradient port. */
export function expectedSender(port: Port, v: { inputs: readonly number[]; consumers: ReadonlyArray<{ index: number }>; fed?: { aggregator?: number } }): Sender {
  const p = parsePort(port);
  if (!p || p.dir === 'target') return 'trainer';
  // Federated rounds: a replica layer's sync comes from its aggregator; an aggregator's delta slot r from replica r's layer (its inputs).
  if (p.dir === 'sync') return v.fed?.aggregator ?? -1;
  if (p.dir === 'bwd') return v.consumers[p.slot]?.index ?? -1;
  const from = v.inputs[p.slot]; // fwd, end
  return from === undefined ? -1 : from < 0 ? 'trainer' : from;
}

/** The sender a `Dcnr-From` names: `trainer`, or the index in a VNode id `<deployment>.<index>.<type>`. */
function senderOf(from: string): Sender {
  if (from === 'trainer') return 'trainer';
  const i = /^[A-Za-z0-9_-]+\.(\d+)\.[A-Za-z0-9_.-]+$/.exec(from)?.[1];
  return i === undefined ? -2 : Number(i);
}

// One check (and one cache of epoch records) per connection: every actor of a PNode shares it.
const checks = new WeakMap<NatsConnection, Promise<SenderCheck>>();
/** The sender check of `nc`'s process, bound to the epochs bucket (opened once). */
export function senderCheckOf(nc: NatsConnection): Promise<SenderCheck> {
  let c = checks.get(nc);
  if (!c) {
    c = new Kvm(nc).open(Bucket.Epochs).then((epochs) => createSenderCheck({ epochs, ownKey: signerOf(nc)?.publicKey }));
    c.catch(() => checks.delete(nc));
    checks.set(nc, c);
  }
  return c;
}

/** The state store's auth for `nc`'s process (auth on: it has a signer), else undefined. */
export async function stateAuthOf(nc: NatsConnection): Promise<{ signer: Signer; ownerKey: SenderCheck['ownerKey'] } | undefined> {
  const signer = signerOf(nc);
  return signer && { signer, ownerKey: (await senderCheckOf(nc)).ownerKey };
}
