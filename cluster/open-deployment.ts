/**
 * Open a trained deployment for reading, from a running cluster (`--nats URL`) or from
 * the store a finished run left (`--store DIR`, read through a private nats-server
 * started on it and stopped by `close`): what `dcnr generate` and `dcnr export` share.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { openBuckets, readDeployment, type DeploymentRecord } from '../runtime/cluster-state.js';
import { resolveModel, type ResolvedModel } from '../runtime/model.js';
import { stateAuthOf } from '../runtime/security/verifier.js';
import { chunkBytesFor, StateStore } from '../runtime/state-store.js';
import { startPrivateNats } from './local-cluster.js';
import type { NatsServer } from './nats-server.js';
import { connectNats } from './process.js';

export interface OpenDeploymentOptions {
  deployment: string;
  /** A running NATS server holding it. */
  nats?: string;
  /** The store a finished `dcnr train` left. @default '.dcnr/store' (when `nats` is not given) */
  store?: string;
  /** This client's connection name, e.g. `dcnr-export`. */
  client: string;
  /** What to tell a user whose store does not exist, e.g. `train first: dcnr train --model names-gpt`. */
  hint?: string;
}

export interface OpenedDeployment {
  url: string;
  nc: NatsConnection;
  record: DeploymentRecord & { generation: number };
  /** The model whose parameters it holds: a federated deployment's replica 0 (after its last round every replica holds them). */
  model: ResolvedModel;
  /** Every VNode it deploys: `model`, or a federated deployment's replicas and aggregators (docs/federated.md). */
  deployed: ResolvedModel;
  /** Its VNodes' state (read it with trainer/evaluate.ts `loadAllTensors`). */
  store: StateStore;
  /** A private nats-server was started on `--store` (nothing else runs on it). */
  fromStore: boolean;
  /** Close the connection and stop the private nats-server, if one was started. */
  close(): Promise<void>;
}

/** What the user asked for is not there or not possible (no store, no such deployment): the command exits 2, as for a bad flag. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export async function openDeployment(o: OpenDeploymentOptions): Promise<OpenedDeployment> {
  if (o.nats && o.store) throw new UsageError('give --nats URL (a running cluster) or --store DIR (a finished run), not both');
  let server: NatsServer | undefined;
  let nc: NatsConnection | undefined;
  const close = async () => {
    await nc?.close().catch(() => {});
    await server?.stop();
  };
  try {
    let url = o.nats;
    if (!url) {
      const dir = resolve(o.store ?? '.dcnr/store');
      if (!existsSync(dir)) throw new UsageError(`--store ${dir}: no such directory${o.hint ? ` (${o.hint})` : ''}`);
      server = (await startPrivateNats(dir)).server;
      url = server.url;
    }
    nc = await connectNats(url, o.client);
    const buckets = await openBuckets(nc);
    const record = await readDeployment(buckets.deployments, o.deployment);
    if (!record) throw new UsageError(`no deployment named ${JSON.stringify(o.deployment)} at ${o.nats ? url : `--store ${resolve(o.store ?? '.dcnr/store')}`}`);
    // A federated deployment is read as replica 0 (indices 0..N−1): after its last round every replica holds those parameters (docs/federated.md).
    const resolved = resolveModel(record.spec, { shapes: record.shapes });
    const model = resolved.federation?.base ?? resolved;
    const store = new StateStore(buckets.state, { chunkBytes: chunkBytesFor(nc), auth: await stateAuthOf(nc) });
    return { url, nc, record, model, deployed: resolved, store, fromStore: server !== undefined, close };
  } catch (err) {
    await close();
    throw err;
  }
}
