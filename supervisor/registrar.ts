/**
 * The registrar: admits PNodes that join (runtime/security/join.ts has the wire format)
 * and revokes them. It holds the network authority, so it lives in the trusted core
 * beside the supervisor.
 *
 * Admission policies: `open` (anyone who proves it holds its key), `allowlist:FILE`
 * (public keys, one per line; `#` comments), `pow:BITS` (a proof of work of BITS
 * leading zero bits per join). A name is bound to the first key admitted under it; a
 * revoked key is never admitted again.
 *
 * Revocation (`dcnr revoke <pnode>`, a request on `dcnr.ctl.revoke` that only the
 * supervisor role may send): every key issued under that name goes into the account
 * JWT's revocation list, pushed to nats-server through the system account. The server
 * closes those connections at once and refuses them from then on.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, credsAuthenticator, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { fromPublic } from '@nats-io/nkeys';
import { Subject } from '../runtime/protocol.js';
import { accountJwt, addRevoked, issuedIdentities, issueUser, recordIssued, revokedKeys, systemCreds, type Authority } from '../runtime/security/authority.js';
import { joinPayload, joinRequest, workBits } from '../runtime/security/join.js';

export type Admission = { kind: 'open' } | { kind: 'allowlist'; keys: Set<string>; file: string } | { kind: 'pow'; bits: number };

/** `open` | `allowlist:FILE` | `pow:BITS`; a clear error otherwise. */
export function parseAdmission(text: string): Admission {
  if (text === 'open') return { kind: 'open' };
  const [kind, arg] = [text.slice(0, text.indexOf(':')), text.slice(text.indexOf(':') + 1)];
  if (kind === 'pow') {
    const bits = Number(arg);
    if (!Number.isInteger(bits) || bits < 1 || bits > 32) throw new Error(`--admission pow:BITS needs 1-32 bits, got ${JSON.stringify(arg)}`);
    return { kind: 'pow', bits };
  }
  if (kind === 'allowlist' && arg) {
    let text: string;
    try {
      text = readFileSync(arg, 'utf8');
    } catch (err) {
      throw new Error(`--admission allowlist: cannot read ${arg}: ${(err as Error).message}`);
    }
    const keys = text.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean);
    const bad = keys.find((k) => !/^U[A-Z2-7]{55}$/.test(k));
    if (bad) throw new Error(`--admission allowlist: ${arg} has a line that is not a user public key: ${JSON.stringify(bad)}`);
    return { kind: 'allowlist', keys: new Set(keys), file: arg };
  }
  throw new Error(`--admission must be open, allowlist:FILE or pow:BITS, got ${JSON.stringify(text)}`);
}

export interface RegistrarOptions {
  /** The supervisor's connection (the revoke requests arrive on it). */
  nc: NatsConnection;
  authority: Authority;
  /** The NATS URL joiners are told to use (as they reach it: from outside, it may differ from ours). */
  natsUrl: string;
  /** The NATS URL the system account connects to, as this supervisor reaches it. @default natsUrl */
  systemUrl?: string;
  port: number;
  host?: string;
  admission?: Admission;
  log(line: string): void;
}

export interface Registrar {
  url: string;
  close(): Promise<void>;
}

const NONCE_TTL_MS = 60_000;
const MAX_BODY = 16 * 1024;

export async function startRegistrar(o: RegistrarOptions): Promise<Registrar> {
  const admission = o.admission ?? { kind: 'open' };
  const nonces = new Map<string, number>();
  const system = await connect({ servers: (o.systemUrl ?? o.natsUrl).split(','), name: 'dcnr-registrar-system', authenticator: credsAuthenticator(new TextEncoder().encode(await systemCreds(o.authority))), maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  const pushAccount = async (revoked: Record<string, number>) => {
    const reply = await system.request(`$SYS.REQ.ACCOUNT.${o.authority.accountId}.CLAIMS.UPDATE`, await accountJwt(o.authority, revoked), { timeout: 10_000 });
    const body = reply.json<{ data?: { code?: number; message?: string }; error?: { description?: string } }>();
    if (body.error || (body.data?.code ?? 200) !== 200) throw new Error(`nats-server refused the account update: ${body.error?.description ?? body.data?.message}`);
  };
  // Revocations survive a restarted nats-server that lost them (its resolver directory).
  if (Object.keys(revokedKeys(o.authority)).length > 0) await pushAccount(revokedKeys(o.authority));

  const admit = async (body: unknown): Promise<{ status: number; body: Record<string, unknown> }> => {
    const parsed = joinRequest.safeParse(body);
    if (!parsed.success) return { status: 400, body: { error: `${parsed.error.issues[0]?.path.join('.') || 'body'}: ${parsed.error.issues[0]?.message}` } };
    const r = parsed.data;
    const issuedAt = nonces.get(r.nonce);
    if (issuedAt === undefined || Date.now() - issuedAt > NONCE_TTL_MS) return { status: 400, body: { error: 'unknown or expired challenge: GET /v1/challenge again' } };
    nonces.delete(r.nonce);
    let verified = false;
    try {
      verified = fromPublic(r.publicKey).verify(joinPayload(r.nonce, r.name, r.publicKey), Buffer.from(r.signature, 'base64url'));
    } catch {
      verified = false;
    }
    if (!verified) return { status: 401, body: { error: 'the signature does not verify against publicKey' } };
    if (revokedKeys(o.authority)[r.publicKey] !== undefined) return { status: 403, body: { error: 'this key was revoked' } };
    if (admission.kind === 'allowlist' && !admission.keys.has(r.publicKey)) return { status: 403, body: { error: `key not on the allowlist (${admission.file})` } };
    if (admission.kind === 'pow' && (r.work === undefined || workBits(r.nonce, r.publicKey, r.work) < admission.bits)) return { status: 403, body: { error: `proof of work short of ${admission.bits} bits` } };
    // One name per key and one key per name, checked and recorded with no await between
    // (two joins racing for a name cannot both get it).
    const issuedBefore = issuedIdentities(o.authority);
    if (issuedBefore.some((i) => i.name === r.name && i.publicKey !== r.publicKey)) return { status: 409, body: { error: `the name ${r.name} belongs to another key` } };
    const other = issuedBefore.find((i) => i.publicKey === r.publicKey && i.name !== r.name);
    if (other) return { status: 409, body: { error: `this key was admitted as ${other.name}: one PNode per key` } };
    if (!issuedBefore.some((i) => i.name === r.name && i.publicKey === r.publicKey)) recordIssued(o.authority, { role: 'pnode', name: r.name, publicKey: r.publicKey });
    const issued = await issueUser(o.authority, 'pnode', r.name, r.publicKey);
    o.log(`admitted ${r.name} (${r.publicKey.slice(0, 12)}…, admission ${admission.kind})`);
    return { status: 200, body: { name: r.name, jwt: issued.jwt, nats: o.natsUrl } };
  };

  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/v1/challenge' && req.method === 'GET') {
      const nonce = randomBytes(16).toString('hex');
      const now = Date.now();
      for (const [n, at] of nonces) if (now - at > NONCE_TTL_MS) nonces.delete(n);
      if (nonces.size > 10_000) return send(res, 503, { error: 'too many pending joins; try again' });
      nonces.set(nonce, now);
      return send(res, 200, { nonce, admission: admission.kind, difficulty: admission.kind === 'pow' ? admission.bits : 0 });
    }
    if (path === '/v1/join' && req.method === 'POST') {
      let text = '';
      for await (const chunk of req) {
        text += chunk;
        if (text.length > MAX_BODY) return send(res, 413, { error: `body over ${MAX_BODY} bytes` });
      }
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return send(res, 400, { error: 'body is not JSON' });
      }
      const out = await admit(body);
      return send(res, out.status, out.body);
    }
    if (path === '/v1/challenge' || path === '/v1/join') return send(res, 405, { error: `method ${req.method} not allowed` });
    return send(res, 404, { error: `not found: ${path}` });
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((err) => send(res, 500, { error: (err as Error).message }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? new Error(`registrar: port ${o.port} on ${o.host ?? '127.0.0.1'} is in use`) : err));
    server.listen(o.port, o.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const url = `http://${o.host ?? '127.0.0.1'}:${typeof address === 'object' && address ? address.port : o.port}/`;

  const revokeSub: Subscription = o.nc.subscribe(Subject.control('revoke'), {
    callback: (_err, msg) => {
      void (async () => {
        let pnode: unknown;
        try {
          pnode = (JSON.parse(msg.string()) as { pnode?: unknown }).pnode;
        } catch {
          pnode = undefined;
        }
        if (typeof pnode !== 'string' || pnode === '') return msg.respond(JSON.stringify({ ok: false, error: 'expected {"pnode": "<name>"}' }));
        const keys = issuedIdentities(o.authority).filter((i) => i.role === 'pnode' && i.name === pnode).map((i) => i.publicKey);
        if (keys.length === 0) return msg.respond(JSON.stringify({ ok: false, error: `no PNode ${pnode} was admitted by this authority` }));
        try {
          await pushAccount(addRevoked(o.authority, keys));
          o.log(`revoked ${pnode} (${keys.length} key${keys.length === 1 ? '' : 's'})`);
          msg.respond(JSON.stringify({ ok: true, pnode, keys }));
        } catch (err) {
          msg.respond(JSON.stringify({ ok: false, error: (err as Error).message }));
        }
      })();
    },
  });
  o.log(`registrar on ${url} (admission ${admission.kind})`);
  return {
    url,
    async close() {
      revokeSub.unsubscribe();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await system.close();
    },
  };
}
