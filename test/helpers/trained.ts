/**
 * A real trained deployment for tests that read one: `dcnr train --pnodes 0` run as a
 * user runs it, into a temporary store, and its committed parameters read back through
 * a private nats-server on that store (stopped before this returns).
 *
 * @example
 * const run = await trainDeployment('mnist-mlp', ['--steps', '30', '--batch', '32']);
 * try { ... run.model, run.tensors ... } finally { run.remove(); }
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import '../../actors/index.js';
import { startPrivateNats } from '../../cluster/local-cluster.js';
import { connectNats } from '../../cluster/process.js';
import { openBuckets, readDeployment } from '../../runtime/cluster-state.js';
import { resolveModel, type ResolvedModel } from '../../runtime/model.js';
import { stateAuthOf } from '../../runtime/security/verifier.js';
import { chunkBytesFor, StateStore } from '../../runtime/state-store.js';
import type { Tensors } from '../../runtime/vnode-type.js';
import { loadAllTensors } from '../../trainer/evaluate.js';
import { dcnr } from './dcnr.js';
import { tempDir } from './nats.js';

export interface TrainedDeployment {
  /** The store `dcnr train` left (for `dcnr generate --store`). */
  store: string;
  model: ResolvedModel;
  tensors: Tensors[];
  /** The run's `--json` result. */
  result: Record<string, any>;
  remove(): void;
}

/** Train `model` (a built-in name) in one process with `args`, and read its parameters. */
export async function trainDeployment(model: string, args: string[]): Promise<TrainedDeployment> {
  const dir = tempDir('dcnr-trained-');
  const store = join(dir, 'store');
  const run = await dcnr(['train', '--model', model, '--pnodes', '0', '--store', store, '--json', ...args]);
  if (run.code !== 0 || !run.json) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`dcnr train --model ${model} failed (exit ${run.code}): ${run.stderr.slice(-1500)}`);
  }
  const { server } = await startPrivateNats(store);
  try {
    const nc = await connectNats(server.url, 'test-trained');
    try {
      const buckets = await openBuckets(nc);
      const record = await readDeployment(buckets.deployments, model);
      if (!record) throw new Error(`the store has no deployment ${model}`);
      const resolved = resolveModel(record.spec, { shapes: record.shapes });
      const tensors = await loadAllTensors(new StateStore(buckets.state, { chunkBytes: chunkBytesFor(nc), auth: await stateAuthOf(nc) }), resolved);
      return { store, model: resolved, tensors, result: run.json, remove: () => rmSync(dir, { recursive: true, force: true }) };
    } finally {
      await nc.close().catch(() => {});
    }
  } finally {
    await server.stop();
  }
}
