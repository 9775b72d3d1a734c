/**
 * `dcnr pnode --nats URL [--name ID]`: one worker process hosting VNodes.
 * `dcnr pnode --join REGISTRAR`: the same on a network it was never given credentials
 * for — it presents its key to the registrar, is admitted, and connects with the
 * PNode credentials it gets (runtime/security/join.ts).
 */
import { resolve } from 'node:path';
import '../actors/index.js';
import { createKernels } from '../runtime/kernels/index.js';
import { startPNode } from '../runtime/pnode/pnode.js';
import { componentLog } from '../runtime/log.js';
import { joinNetwork, loadOrCreateIdentity } from '../runtime/security/join.js';
import { initTelemetry } from '../runtime/telemetry.js';
import { fail } from './output.js';
import { connectNats, defaultCreds, onShutdown, readCreds } from '../cluster/process.js';

export interface PNodeCliOptions {
  nats: string;
  natsGiven: boolean;
  name?: string;
  heartbeatMs: number;
  hangMs: number;
  passivateMs: number;
  maxVnodes: number;
  join?: string;
  identity?: string;
}

export async function pnodeCommand(opts: PNodeCliOptions): Promise<void> {
  let name = opts.name ?? `pnode-${process.pid}`;
  let url = opts.nats;
  let creds: string | undefined;
  if (opts.join) {
    try {
      // Without --name, the name comes from the key: the same identity, the same PNode.
      const identity = resolve(opts.identity ?? `.dcnr/identity/${opts.name ?? 'pnode'}.nk`);
      if (!opts.name) name = `pnode-${loadOrCreateIdentity(identity).getPublicKey().slice(1, 9).toLowerCase()}`;
      const joined = await joinNetwork(opts.join, name, identity, (l) => componentLog(name).line(l));
      componentLog(name).line(`joined through ${opts.join} as ${name} (${joined.publicKey.slice(0, 12)}…), credentials in ${joined.credsFile}`);
      creds = joined.credsFile;
      if (!opts.natsGiven) url = joined.nats;
    } catch (err) {
      fail((err as Error).message, 1);
    }
  }
  const stopTelemetry = await initTelemetry({ service: 'dcnr-pnode', mode: process.env.DCNR_OTEL, attributes: { 'dcnr.pnode': name } }).catch((err) => fail(err.message));
  const nc = await connectNats(url, `dcnr-${name}`, creds).catch((err) => fail(err.message));
  const kernels = await createKernels();
  let pnode;
  try {
    // Heartbeats from their own thread and connection (runtime/pnode/heartbeat.ts), with the same credentials.
    const credsFile = creds ?? defaultCreds(url);
    const heartbeatLink = { servers: url.split(','), ...(credsFile ? { creds: new TextDecoder().decode(readCreds(credsFile)) } : {}) };
    pnode = await startPNode({ nc, name, kernels, heartbeatMs: opts.heartbeatMs, heartbeatLink, hangMs: opts.hangMs, passivateAfterMs: opts.passivateMs, maxVNodes: opts.maxVnodes, log: componentLog(name) });
  } catch (err) {
    fail((err as Error).message, 1);
  }
  let stopping = false;
  // A connection the server gave up on (credentials revoked, refused on every reconnect)
  // ends the process: a PNode that cannot talk hosts nothing.
  void nc.closed().then((err) => {
    if (stopping) return;
    componentLog(name).line(`NATS closed our connection${err ? `: ${err.message}` : ''} (credentials revoked?); exiting`, 'warn');
    process.exit(1);
  });
  onShutdown(async () => {
    stopping = true;
    await pnode.stop();
    await nc.close();
    await stopTelemetry?.();
  });
}
