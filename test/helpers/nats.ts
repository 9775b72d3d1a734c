/**
 * The shared integration-test fixture: a real `nats-server -js` on a free loopback
 * port with a temporary store directory. No mock of NATS anywhere.
 *
 * @example
 * const { ns, nc } = await setup();
 * try { ... } finally { await cleanup(ns, nc); }
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServer } from '../../cluster/nats-server.js';
import { startPrivateNats } from '../../cluster/local-cluster.js';
import { connectNats, forgetCreds } from '../../cluster/process.js';
import { writeCreds, type Authority } from '../../runtime/security/authority.js';
import type { Role } from '../../runtime/security/roles.js';

export interface Fixture {
  ns: NatsServer;
  nc: NatsConnection;
}

/** Start a private nats-server and connect to it. */
export async function setup(opts: { maxPayload?: number } = {}): Promise<Fixture> {
  const storeDir = mkdtempSync(join(tmpdir(), 'dcnr-test-'));
  const ns = await startNatsServer({ storeDir, maxPayload: opts.maxPayload });
  const nc = await connect({ servers: ns.url, name: 'dcnr-test' });
  return { ns, nc };
}

/** Close the connection, stop the server and remove its store. */
export async function cleanup(ns: NatsServer, nc?: NatsConnection): Promise<void> {
  await nc?.close().catch(() => {});
  await ns.stop();
  rmSync(ns.storeDir, { recursive: true, force: true });
}

/** A fresh temporary directory, removed by the caller. */
export const tempDir = (prefix = 'dcnr-test-') => mkdtempSync(join(tmpdir(), prefix));

/** A private nats-server with auth on, its authority, and an admin connection (the network's creator). */
export interface AuthFixture {
  server: NatsServer;
  authority: Authority;
  admin: NatsConnection;
  /** Connect as `role` under `name` with fresh credentials; closed by `stop`. */
  as(role: Role, name: string): Promise<NatsConnection>;
  stop(): Promise<void>;
}

export async function setupAuth(): Promise<AuthFixture> {
  const dir = tempDir('dcnr-auth-');
  const own = await startPrivateNats(dir, true);
  const admin = await connectNats(own.server.url, 'test-admin', own.adminCreds);
  const conns: NatsConnection[] = [admin];
  return {
    server: own.server,
    authority: own.authority!,
    admin,
    async as(role, name) {
      const nc = await connectNats(own.server.url, `test-${name}`, await writeCreds(own.authority!, role, name));
      conns.push(nc);
      return nc;
    },
    async stop() {
      for (const c of conns) await c.close().catch(() => {});
      forgetCreds(own.server.url);
      await own.server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
