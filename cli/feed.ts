/**
 * `dcnr feed`: a federated replica's data owner (trainer/replica-feed.ts). It holds one
 * shard file and feeds its replica from it; `dcnr train --replicas R` starts one per
 * replica, and an owner on another machine runs the same command against the network.
 */
import '../actors/index.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats, onShutdown } from '../cluster/process.js';
import { feedReplica, type ReplicaFeedResult } from '../trainer/replica-feed.js';
import { createProgress, fail, printResult } from './output.js';

export interface FeedCliOptions {
  deployment: string;
  replica: number;
  shard: string;
  nats: string;
  json: boolean;
}

export async function feedCommand(opts: FeedCliOptions): Promise<void> {
  let nc: NatsConnection | undefined;
  let result: ReplicaFeedResult | undefined;
  let error: string | undefined;
  const stop = new AbortController();
  // Stopped, or its launcher (dcnr train) died: it leaves.
  onShutdown(async () => {
    stop.abort(new Error('stopped'));
    await nc?.close().catch(() => {});
  });
  let progress: ReturnType<typeof createProgress> | undefined;
  try {
    nc = await connectNats(opts.nats, `dcnr-feed-${opts.deployment}-${opts.replica}-${process.pid}`);
    result = await feedReplica({
      nc,
      deployment: opts.deployment,
      replica: opts.replica,
      shard: opts.shard,
      signal: stop.signal,
      onProgress: ({ done, steps, loss }) => {
        progress ??= createProgress(steps, `feed replica ${opts.replica}`);
        progress.update(done, loss);
      },
    });
  } catch (err) {
    error = (err as Error).message;
  } finally {
    progress?.stop();
    await nc?.close().catch(() => {});
  }
  if (error !== undefined) fail(`dcnr feed: replica ${opts.replica} of ${opts.deployment}: ${error}`, 1);
  const r = result!;
  printResult({ ...r }, opts.json, () => `replica ${r.replica} of ${r.deployment}: fed steps ${r.from}..${r.steps} from ${r.shard} (${r.rows} rows)`);
}
