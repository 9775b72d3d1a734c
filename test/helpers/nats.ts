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
