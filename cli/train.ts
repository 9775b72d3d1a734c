/**
 * `dcnr train`: deploy a model and train it.
 * `--pnodes 0` hosts every VNode in this process (starting a private nats-server
 * unless `--nats` is given).
 */
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import '../actors/index.js';
import { createKernels } from '../runtime/kernels/index.js';
import { loadModelSpec, resolveModel } from '../runtime/model.js';
import { startNatsServer, type NatsServer } from '../runtime/nats-server.js';
import { train } from '../runtime/trainer.js';
import { createProgress, fail, printResult } from './output.js';

export interface TrainCliOptions {
  model: string;
  steps: number;
  batch: number;
  seed: number;
  pnodes: number;
  nats?: string;
  store: string;
  resume: boolean;
  json: boolean;
}

export async function trainCommand(opts: TrainCliOptions): Promise<void> {
  if (opts.pnodes !== 0 && !opts.nats) {
    fail(`--pnodes ${opts.pnodes}: a multi-PNode private cluster is not available yet; use --pnodes 0 (one process) or --nats URL`);
  }
  let model;
  try {
    model = resolveModel(loadModelSpec(opts.model));
  } catch (err) {
    fail((err as Error).message);
  }

  let server: NatsServer | undefined;
  let nc: NatsConnection | undefined;
  const storeDir = resolve(opts.store);
  const shutdown = async () => {
    await nc?.close().catch(() => {});
    await server?.stop();
  };
  process.once('SIGINT', () => {
    process.stderr.write('\ndcnr: interrupted; state is in KV, continue with --resume\n');
    void shutdown().finally(() => process.exit(130));
  });

  try {
    if (!opts.nats) {
      // A fresh run starts from an empty store; --resume keeps it.
      if (!opts.resume) rmSync(storeDir, { recursive: true, force: true });
      server = await startNatsServer({ storeDir });
    }
    const url = opts.nats ?? server!.url;
    nc = await connect({ servers: url, name: `dcnr-train-${process.pid}` }).catch((err) => fail(`cannot connect to NATS at ${url}: ${err.message}`));
    const kernels = await createKernels();
    process.stderr.write(
      `dcnr train: ${model.spec.name} (${model.vnodes.length} VNodes, pipeline depth ${model.spec.pipelineDepth}), ` +
        `${opts.steps} steps × batch ${opts.batch}, seed ${opts.seed}, kernels ${kernels.mode}, NATS ${url}${opts.resume ? ', resuming' : ''}\n`,
    );
    const progress = createProgress(opts.steps, 'train');
    const result = await train({
      nc,
      model,
      steps: opts.steps,
      batch: opts.batch,
      seed: opts.seed,
      kernels,
      resume: opts.resume,
      hostLocally: opts.pnodes === 0,
      onProgress: ({ done, loss }) => progress.update(done, loss),
      onEvent: (e) => {
        if (e.type === 'rejected') process.stderr.write(`dcnr: rejected a message for ${e.vnode}: ${e.error}\n`);
        if (e.type === 'restarting') process.stderr.write(`dcnr: ${e.vnode} failed, restarting in ${e.delayMs} ms: ${e.error.split('\n')[0]}\n`);
      },
    });
    progress.stop();
    const { losses: _losses, ...summary } = result;
    const out = { ...summary, pnodes: opts.pnodes, kernelMode: kernels.mode };
    printResult(out, opts.json, () =>
      [
        `model        ${out.model}`,
        `steps        ${out.steps} × batch ${out.batch} (resumed from ${out.resumedFrom})`,
        `final loss   ${out.finalLoss.toFixed(4)}`,
        `test acc.    ${(out.testAccuracy * 100).toFixed(2)}%`,
        `samples/s    ${out.samplesPerSec.toFixed(0)}`,
        `kernels      ${out.kernelMode}`,
        `paramsHash   ${out.paramsHash}`,
        `duration     ${(out.durationMs / 1000).toFixed(1)} s`,
      ].join('\n'),
    );
  } catch (err) {
    fail((err as Error).stack ?? String(err), 1);
  } finally {
    await shutdown();
  }
}
