/**
 * The network authority: the keys a DCNR network's trust starts from, in NATS's
 * decentralized auth (operator → account → user JWTs, ed25519 nkeys).
 *
 *   operator   signs the accounts; its JWT is in the nats-server configuration
 *   system     the server's system account (claim updates: revocations)
 *   account    the DCNR account every process is a user of; its key signs user JWTs
 *
 * The file (authority.json, mode 0600) holds the three seeds: whoever holds it can
 * admit anyone, so only the launcher and the supervisor (its registrar) read it. Every
 * other process gets a credentials file: a user JWT (its role's permissions, its
 * public key) and its own seed, in the `.creds` format of every NATS client.
 */
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { encodeAccount, encodeOperator, encodeUser, fmtCreds } from '@nats-io/jwt';
import { createAccount, createOperator, createUser, fromPublic, fromSeed, type KeyPair } from '@nats-io/nkeys';
import { z } from 'zod';
import { rolePermissions, type Role } from './roles.js';

export const AUTHORITY_FILE = 'authority.json';
/** The directory of the authority a supervisor's registrar issues and revokes with. */
export const AUTHORITY_ENV = 'DCNR_AUTHORITY';
/** Whether launchers turn auth on: yes unless `DCNR_AUTH=off` (`--no-auth`). */
export const authDefault = (): boolean => process.env.DCNR_AUTH !== 'off';

const authorityRecord = z.object({
  version: z.literal(1),
  operator: z.string().startsWith('SO'),
  system: z.string().startsWith('SA'),
  account: z.string().startsWith('SA'),
  createdAt: z.string(),
});

export interface Authority {
  /** Directory the authority and the credentials it issued live in. */
  dir: string;
  operator: KeyPair;
  system: KeyPair;
  account: KeyPair;
  /** The DCNR account's public key (users' `issuer_account`). */
  accountId: string;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
/** No limit on connections, subscriptions, payload or JetStream use (the server's own limits still apply). */
const UNLIMITED = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };
const JETSTREAM = { mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 };

/** Create a new authority in `dir` (refuses to overwrite one). */
export function createAuthority(dir: string): Authority {
  const file = join(dir, AUTHORITY_FILE);
  if (existsSync(file)) throw new Error(`${file} exists: a network has one authority (load it, or remove the directory for a new network)`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const a = { operator: createOperator(), system: createAccount(), account: createAccount() };
  const seed = (k: KeyPair) => dec.decode(k.getSeed());
  writeFileSync(file, JSON.stringify({ version: 1, operator: seed(a.operator), system: seed(a.system), account: seed(a.account), createdAt: new Date().toISOString() }, null, 2) + '\n', { mode: 0o600 });
  return { dir, ...a, accountId: a.account.getPublicKey() };
}

/** Load the authority of `dir`; a clear error when it is missing or damaged. */
export function loadAuthority(dir: string): Authority {
  const file = join(dir, AUTHORITY_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read the network authority ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (err as Error).message}`);
  }
  const parsed = authorityRecord.safeParse(raw);
  if (!parsed.success) throw new Error(`${file} is not a DCNR network authority: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  const keys = { operator: fromSeed(enc.encode(parsed.data.operator)), system: fromSeed(enc.encode(parsed.data.system)), account: fromSeed(enc.encode(parsed.data.account)) };
  return { dir, ...keys, accountId: keys.account.getPublicKey() };
}

/** Load the authority of `dir`, or create it there. */
export const ensureAuthority = (dir: string): Authority => (existsSync(join(dir, AUTHORITY_FILE)) ? loadAuthority(dir) : createAuthority(dir));

/** The DCNR account's JWT; `revoked` maps a user public key to the time (s) before which its JWTs are void. */
export function accountJwt(a: Authority, revoked: Record<string, number> = {}): Promise<string> {
  return encodeAccount('DCNR', a.account, { limits: { ...UNLIMITED, ...JETSTREAM } as never, revocations: revoked }, { signer: a.operator });
}

/** The nats-server configuration lines that turn auth on (operator mode, a full resolver). */
export async function serverAuthConfig(a: Authority, resolverDir: string): Promise<string[]> {
  const operatorJwt = await encodeOperator('dcnr', a.operator, { system_account: a.system.getPublicKey() });
  const systemJwt = await encodeAccount('SYS', a.system, { limits: UNLIMITED as never }, { signer: a.operator });
  return [
    `operator: ${operatorJwt}`,
    `system_account: ${a.system.getPublicKey()}`,
    `resolver: { type: full, dir: ${JSON.stringify(resolverDir)}, allow_delete: false, interval: "2m" }`,
    `resolver_preload: {`,
    `  ${a.system.getPublicKey()}: ${systemJwt}`,
    `  ${a.accountId}: ${await accountJwt(a)}`,
    `}`,
  ];
}

export interface Issued {
  jwt: string;
  /** The credentials file's text (JWT + seed) when the seed is ours to give. */
  creds?: string;
  /** The user's public key (`U…`). */
  publicKey: string;
}

/**
 * A user JWT for `role` (named `name`), for the key `publicKey` when the user holds its
 * own seed (a joining PNode), else for a new key whose seed goes into the creds.
 */
export async function issueUser(a: Authority, role: Role, name: string, publicKey?: string): Promise<Issued> {
  const user = publicKey ? fromPublic(publicKey) : createUser();
  const perms = rolePermissions(role, role === 'pnode' ? name : undefined);
  const jwt = await encodeUser(`${role}:${name}`, user, a.account, { subs: -1, data: -1, payload: -1, pub: perms.pub, sub: perms.sub, tags: [`role:${role}`] } as never);
  return { jwt, publicKey: user.getPublicKey(), ...(publicKey ? {} : { creds: dec.decode(fmtCreds(jwt, user)) }) };
}

/** The credentials of the system account (to push claim updates). */
export async function systemCreds(a: Authority): Promise<string> {
  const user = createUser();
  const jwt = await encodeUser('system', user, a.system, { subs: -1, data: -1, payload: -1 } as never);
  return dec.decode(fmtCreds(jwt, user));
}

/**
 * Issue `role` credentials and write them to `<dir>/<file>` (0600); returns the path. An
 * identity is stable: when the file already holds a seed, that key gets the new JWT (a
 * restarted or resumed process signs as before — a resumed run's feeds must be signed
 * by the key its deployment record names).
 */
export async function writeCreds(a: Authority, role: Role, name: string, file = `${name}.creds`): Promise<string> {
  const path = join(a.dir, file);
  mkdirSync(dirname(path), { recursive: true });
  const seed = existsSync(path) ? /-----BEGIN USER NKEY SEED-----\s*\n\s*(SU[A-Z2-7]+)\s*\n/.exec(readFileSync(path, 'utf8'))?.[1] : undefined;
  let creds: string;
  let publicKey: string;
  if (seed) {
    const kp = fromSeed(enc.encode(seed));
    publicKey = kp.getPublicKey();
    if (revokedKeys(a)[publicKey] !== undefined) throw new Error(`${path}: this identity (${name}) was revoked; remove the file for a new one`);
    creds = dec.decode(fmtCreds((await issueUser(a, role, name, publicKey)).jwt, kp));
  } else {
    const issued = await issueUser(a, role, name);
    ({ publicKey } = issued);
    creds = issued.creds!;
    recordIssued(a, { role, name, publicKey });
  }
  writeFileSync(path, creds, { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}

// What the authority issued and revoked, beside it (the trusted core's own files, never
// KV: what anyone with a connection can write cannot decide who is trusted).
const ISSUED_FILE = 'issued.jsonl';
const REVOKED_FILE = 'revoked.json';
const issuedLine = z.object({ role: z.string(), name: z.string(), publicKey: z.string().startsWith('U'), at: z.string() });
export type IssuedRecord = z.infer<typeof issuedLine>;

export function recordIssued(a: Authority, r: { role: Role; name: string; publicKey: string }): void {
  appendFileSync(join(a.dir, ISSUED_FILE), JSON.stringify({ ...r, at: new Date().toISOString() }) + '\n', { mode: 0o600 });
}

/** Every identity issued so far (lines that do not parse are skipped). */
export function issuedIdentities(a: Authority): IssuedRecord[] {
  let text = '';
  try {
    text = readFileSync(join(a.dir, ISSUED_FILE), 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').flatMap((l) => {
    try {
      const p = issuedLine.safeParse(JSON.parse(l));
      return p.success ? [p.data] : [];
    } catch {
      return [];
    }
  });
}

/** Public key → the time (s since epoch) before which its JWTs are void. */
export function revokedKeys(a: Authority): Record<string, number> {
  try {
    const v = z.record(z.string(), z.number()).safeParse(JSON.parse(readFileSync(join(a.dir, REVOKED_FILE), 'utf8')));
    return v.success ? v.data : {};
  } catch {
    return {};
  }
}

export function addRevoked(a: Authority, keys: string[], at = Math.ceil(Date.now() / 1000) + 1): Record<string, number> {
  const all = { ...revokedKeys(a), ...Object.fromEntries(keys.map((k) => [k, at])) };
  writeFileSync(join(a.dir, REVOKED_FILE), JSON.stringify(all, null, 2) + '\n', { mode: 0o600 });
  return all;
}
