/**
 * Signed messages and state. Static NATS permissions cannot follow ownership as VNodes
 * move (any PNode may send into mailboxes and write state), so every tensor message and
 * every state commit carries its sender's ed25519 signature (the nkey of its
 * credentials), and receivers check the signer against who was entitled to send it:
 *
 *   from a VNode   the owner of the sending VNode at the message's epoch, as the
 *                  supervisor recorded it (`dcnr_epochs`: <dep>.<generation>.<index>.<epoch> → key)
 *   from trainer   the key that deployed the run (`DeploymentRecord.trainerKey`)
 *   state meta     the owner at the meta's epoch, the same record
 *
 * Signatures are deterministic (ed25519), so a re-sent output is byte-identical, and
 * the message id carries a digest of the signature: nobody without the key can publish
 * under a genuine message's id first (JetStream would drop the genuine one as a dup).
 *
 * Node's own ed25519 (OpenSSL) signs and verifies; nkeys' pure-JS one is several times
 * slower. The keys are the same bytes, so nkeys and nats-server agree with us.
 */
import { createHash, createHmac, createPrivateKey, createPublicKey, randomBytes, sign as edSign, verify as edVerify, timingSafeEqual, type KeyObject } from 'node:crypto';
import { fromSeed } from '@nats-io/nkeys';
import type { NatsConnection } from '@nats-io/transport-node';

export interface Signer {
  /** The nkey public key (`U…`). */
  publicKey: string;
  sign(data: Uint8Array): Uint8Array;
}

const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');

/** A signer from an nkey user seed (`SU…`): the seed's 32 raw bytes (after 2 prefix bytes). */
export function signerFromSeed(seed: string, publicKey: string): Signer {
  const raw = base32Decode(seed).subarray(2, 34);
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, raw]), format: 'der', type: 'pkcs8' });
  return { publicKey, sign: (data) => new Uint8Array(edSign(null, data, key)) };
}

/** The signer of a `.creds` file's text (its seed; the public key derived from it). */
export function signerFromCreds(text: string): Signer {
  const seed = /-----BEGIN USER NKEY SEED-----\s*\n\s*(SU[A-Z2-7]+)\s*\n/.exec(text)?.[1];
  if (!seed) throw new Error('credentials without a user seed');
  return signerFromSeed(seed, fromSeed(new TextEncoder().encode(seed)).getPublicKey());
}

const keys = new Map<string, KeyObject | null>();
/** The public KeyObject of an nkey user public key; null when it is not one. */
function publicKeyObject(publicKey: string): KeyObject | null {
  let k = keys.get(publicKey);
  if (k !== undefined) return k;
  try {
    if (!/^U[A-Z2-7]{55}$/.test(publicKey)) throw new Error('not a user key');
    const raw = base32Decode(publicKey).subarray(1, 33);
    k = createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' });
  } catch {
    k = null;
  }
  if (keys.size > 10_000) keys.clear();
  keys.set(publicKey, k);
  return k;
}

/** Does `signature` (base64url) verify `data` under the nkey `publicKey`? Never throws. */
export function verifySignature(publicKey: string, data: Uint8Array, signature: string): boolean {
  const k = publicKeyObject(publicKey);
  if (!k || !/^[A-Za-z0-9_-]{86}$/.test(signature)) return false;
  try {
    return edVerify(null, data, k, Buffer.from(signature, 'base64url'));
  } catch {
    return false;
  }
}

export const signToText = (s: Signer, data: Uint8Array): string => Buffer.from(s.sign(data)).toString('base64url');

/** What a message signature covers: every header the receiver acts on, and the payload's hash. */
export function messageDigest(f: { deployment: string; to: number; kind: string; seq: number; epoch: number; from: string; shape: string }, payload: Uint8Array): Uint8Array {
  const h = createHash('sha256');
  h.update(`dcnr-msg-v1\n${f.deployment}\n${f.to}\n${f.kind}\n${f.seq}\n${f.epoch}\n${f.from}\n${f.shape}\n`);
  h.update(payload);
  return new Uint8Array(h.digest());
}

/**
 * Messages a process sends to itself (co-located VNodes: every hop of `--pnodes 0`, most
 * of a PNode's) are also tagged with an HMAC under a secret that never leaves the
 * process: a receiver holding the same key checks that (a microsecond) instead of the
 * ed25519 signature (~150 µs, measured: 6.6% of a one-process run's CPU). Anyone else
 * still checks the signature; a tag without the secret is worthless.
 */
const LOCAL_SECRET = randomBytes(32);
export const localTag = (digest: Uint8Array): string => createHmac('sha256', LOCAL_SECRET).update(digest).digest('base64url').slice(0, 32);
export function localTagValid(digest: Uint8Array, tag: string): boolean {
  const want = Buffer.from(localTag(digest));
  const got = Buffer.from(tag);
  return got.length === want.length && timingSafeEqual(got, want);
}

/** The message id of a signed message: the plain id plus 16 characters of its signature's hash (no one can take it first). */
export const signedMessageId = (plain: string, signature: string): string => `${plain}.${createHash('sha256').update(signature).digest('base64url').slice(0, 16)}`;

/** What a state meta's signature covers: its JSON text without `signer` and `signature`. */
export const metaDigest = (text: string): Uint8Array => new Uint8Array(createHash('sha256').update('dcnr-state-v1\n').update(text).digest());

// The signer of each connection: whoever connected with credentials signs with their seed.
const signers = new WeakMap<NatsConnection, Signer>();
export const attachSigner = (nc: NatsConnection, s: Signer): void => void signers.set(nc, s);
/** The signer of `nc`, when it was opened with credentials (then its receivers require signatures too). */
export const signerOf = (nc: NatsConnection): Signer | undefined => signers.get(nc);

/** RFC 4648 base32 without padding, as nkeys encode (prefix bytes, key, crc16). */
function base32Decode(text: string): Uint8Array {
  const out = new Uint8Array(Math.floor((text.length * 5) / 8));
  let bits = 0;
  let value = 0;
  let n = 0;
  for (const c of text) {
    const v = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'.indexOf(c);
    if (v < 0) throw new Error('not base32');
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out[n++] = (value >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
  }
  return out;
}
