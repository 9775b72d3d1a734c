/**
 * Permissionless join, the PNode's side and the wire format both sides share.
 *
 *   GET  /v1/challenge  → { nonce, admission, difficulty }
 *   POST /v1/join       { name, publicKey, nonce, signature, work? } → { name, jwt, nats }
 *
 * The joiner proves it holds the seed of `publicKey` by signing the challenge
 * (`joinPayload`); under the proof-of-work policy it also finds `work` such that
 * sha256(nonce:publicKey:work) starts with `difficulty` zero bits. The JWT it gets back
 * carries PNode permissions for `name` only; with its own seed it is a `.creds` file.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fmtCreds } from '@nats-io/jwt';
import { createUser, fromSeed, type KeyPair } from '@nats-io/nkeys';
import { z } from 'zod';

export const challengeReply = z.object({ nonce: z.string().regex(/^[0-9a-f]{32}$/), admission: z.enum(['open', 'allowlist', 'pow']), difficulty: z.number().int().min(0).max(32) });
export const joinRequest = z.object({
  name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'a PNode name is 1-64 letters, digits, - or _'),
  publicKey: z.string().regex(/^U[A-Z2-7]{55}$/, 'a user public key (U…, 56 characters)'),
  nonce: z.string().regex(/^[0-9a-f]{32}$/),
  signature: z.string().regex(/^[A-Za-z0-9_-]{80,90}$/, 'an ed25519 signature, base64url'),
  work: z.string().max(32).optional(),
});
export const joinReply = z.object({ name: z.string(), jwt: z.string().min(20), nats: z.string().min(1) });
export type JoinRequest = z.infer<typeof joinRequest>;

const enc = new TextEncoder();
export const joinPayload = (nonce: string, name: string, publicKey: string): Uint8Array => enc.encode(`dcnr-join\n${nonce}\n${name}\n${publicKey}`);

/** Leading zero bits of sha256(nonce:publicKey:work). */
export function workBits(nonce: string, publicKey: string, work: string): number {
  const h = createHash('sha256').update(`${nonce}:${publicKey}:${work}`).digest();
  let bits = 0;
  for (const byte of h) {
    if (byte === 0) {
      bits += 8;
      continue;
    }
    return bits + Math.clz32(byte) - 24;
  }
  return bits;
}

/** The smallest counter meeting `difficulty` (about 2^difficulty hashes). */
export function solveWork(nonce: string, publicKey: string, difficulty: number): string {
  for (let i = 0; ; i++) if (workBits(nonce, publicKey, i.toString(36)) >= difficulty) return i.toString(36);
}

/** The PNode's identity: an nkey seed in `file` (0600), made on first use. */
export function loadOrCreateIdentity(file: string): KeyPair {
  if (existsSync(file)) {
    const seed = readFileSync(file, 'utf8').trim();
    if (!/^SU[A-Z2-7]{56}$/.test(seed)) throw new Error(`${file} is not a user nkey seed (SU…): remove it to make a new identity`);
    return fromSeed(enc.encode(seed));
  }
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const kp = createUser();
  writeFileSync(file, new TextDecoder().decode(kp.getSeed()) + '\n', { mode: 0o600 });
  return kp;
}

export interface Joined {
  /** The `.creds` file written beside the identity. */
  credsFile: string;
  /** The NATS URL the registrar told us to use. */
  nats: string;
  publicKey: string;
}

/**
 * Join the network whose registrar is at `registrarUrl` as PNode `name`, with the
 * identity in `identityFile`; writes `<identityFile>.creds`. One clear error when the
 * registrar refuses (its reason) or cannot be reached.
 */
export async function joinNetwork(registrarUrl: string, name: string, identityFile: string, progress: (line: string) => void = () => {}): Promise<Joined> {
  const kp = loadOrCreateIdentity(identityFile);
  const publicKey = kp.getPublicKey();
  const call = async (path: string, init?: RequestInit) => {
    let res: Response;
    try {
      res = await fetch(new URL(path, registrarUrl), { ...init, signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      throw new Error(`cannot reach the registrar at ${registrarUrl}: ${(err as Error).message}`);
    }
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok) throw new Error(`the registrar at ${registrarUrl} refused ${name}: ${typeof body.error === 'string' ? body.error : `HTTP ${res.status}`}`);
    return body;
  };
  const challenge = challengeReply.safeParse(await call('v1/challenge'));
  if (!challenge.success) throw new Error(`the registrar at ${registrarUrl} sent a malformed challenge`);
  const { nonce, admission, difficulty } = challenge.data;
  let work: string | undefined;
  if (admission === 'pow') {
    progress(`join: proof of work, ${difficulty} bits …`);
    work = solveWork(nonce, publicKey, difficulty);
  }
  const signature = Buffer.from(kp.sign(joinPayload(nonce, name, publicKey))).toString('base64url');
  const reply = joinReply.safeParse(await call('v1/join', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, publicKey, nonce, signature, work }) }));
  if (!reply.success) throw new Error(`the registrar at ${registrarUrl} sent a malformed reply`);
  const credsFile = `${identityFile}.creds`;
  writeFileSync(credsFile, fmtCreds(reply.data.jwt, kp), { mode: 0o600 });
  return { credsFile, nats: reply.data.nats, publicKey };
}
