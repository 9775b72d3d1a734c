/**
 * Process plumbing shared by the long-running commands (pnode, supervisor, up):
 * connecting to NATS, clean shutdown on signals, and dying with the parent that
 * spawned us (a cluster launched by `dcnr up` or `dcnr train --pnodes N` must not
 * leave orphans behind when its launcher is SIGKILLed).
 */
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { attachSigner, signerFromCreds } from '../runtime/security/signing.js';

/** Environment variable a launcher sets to its own pid. */
export const PARENT_ENV = 'DCNR_PARENT_PID';

/** `DCNR_NATS_ASYNC_TRACES=1` brings nats.js's async stack traces back (to find where a request timed out). */
export const noAsyncTraces = (): boolean => process.env.DCNR_NATS_ASYNC_TRACES !== '1';

/** The credentials file a process connects with: `--creds FILE` (which sets it) or this variable. */
export const CREDS_ENV = 'DCNR_CREDS';

/**
 * Credentials of the networks this process created (a launcher holds the authority of
 * its private nats-server): `connectNats` to such a URL uses them when no other is given.
 */
const ownNetworks = new Map<string, string>();
export const registerCreds = (url: string, file: string): void => void ownNetworks.set(url, file);
export const forgetCreds = (url: string): void => void ownNetworks.delete(url);

/** Read a `.creds` file (a user JWT and its seed); one clear line when it is not one. */
export function readCreds(file: string): Uint8Array {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the credentials ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  if (!/-----BEGIN NATS USER JWT-----\s*\n\s*[A-Za-z0-9_.-]+\s*\n/.test(text) || !/-----BEGIN USER NKEY SEED-----\s*\n\s*SU[A-Z0-9]+\s*\n/.test(text)) {
    throw new Error(`${file} is not a NATS credentials file (a user JWT and a user seed, as \`dcnr up\` writes them)`);
  }
  return new TextEncoder().encode(text);
}

/**
 * Connect with endless reconnects (a restarted nats-server must not kill a PNode), and
 * without an Error (stack capture) made ahead of every request: measured, 5% of a
 * training process's CPU went to building them (`noAsyncTraces`). Credentials come from
 * `creds` or `DCNR_CREDS`; a server that refuses them (or wants some) is one line.
 * @throws Error naming the URL when the first connection fails.
 */
/** The credentials file `connectNats(url)` uses when given none: `DCNR_CREDS`, else those of a network this process created. */
export const defaultCreds = (url: string): string | undefined => process.env[CREDS_ENV] ?? ownNetworks.get(url);

export async function connectNats(url: string, name: string, creds = defaultCreds(url)): Promise<NatsConnection> {
  const text = creds ? readCreds(creds) : undefined;
  const authenticator = text ? credsAuthenticator(text) : undefined;
  try {
    const nc = await connect({ servers: url.split(','), name, maxReconnectAttempts: -1, reconnectTimeWait: 250, noAsyncTraces: noAsyncTraces(), ...(authenticator ? { authenticator } : {}) });
    // Whoever connects with credentials signs what it sends with their seed (and requires signatures).
    if (text) attachSigner(nc, signerFromCreds(new TextDecoder().decode(text)));
    return nc;
  } catch (err) {
    const e = err as Error;
    if (/authorization|authentication/i.test(`${e.name} ${e.message}`)) {
      throw new Error(creds ? `NATS at ${url} refused the credentials ${creds} (${e.message}): revoked, or of another network` : `NATS at ${url} requires credentials: pass --creds FILE or set ${CREDS_ENV} (\`dcnr up\` writes them under <store>/auth/)`);
    }
    throw new Error(`cannot connect to NATS at ${url}: ${e.message}`);
  }
}

/** Run `stop` on SIGINT/SIGTERM (once), then exit; also exit when the launching parent dies. */
export function onShutdown(stop: () => Promise<void>): void {
  let stopping = false;
  const shutdown = (code: number) => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(code), 5000);
    force.unref();
    void stop()
      .catch(() => {})
      .finally(() => process.exit(code));
  };
  process.on('SIGINT', () => shutdown(130));
  process.on('SIGTERM', () => shutdown(143));
  const parent = Number(process.env[PARENT_ENV]);
  if (parent > 0) {
    setInterval(() => {
      if (process.ppid !== parent) shutdown(1);
    }, 500).unref();
  }
}
