/**
 * `dcnr train`: deploy a model and train it.
 * `--pnodes 0` hosts every VNode in this process (starting a private nats-server
 * unless `--nats` is given).
 */
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import '../actors/index.js';
import { createKernels } from '../runtime/kernels/index.js';
import { loadTrainingData } from '../trainer/data.js';
import { checkpointPolicy, loadModelSpec, resolveModel, withOverrides, type ResolvedModel } from '../runtime/model.js';
import type { NatsServer } from '../cluster/nats-server.js';
import { startLocalCluster, startPrivateNats, type LocalCluster } from '../cluster/local-cluster.js';
import { waitForPNodes } from '../cluster/view.js';
import { connectNats } from '../cluster/process.js';
import { train } from '../trainer/train.js';
import { initFromFile, readInitFile, type StartingParameters } from '../trainer/export.js';
import { paramsHash } from '../trainer/evaluate.js';
import { initTelemetry } from '../runtime/telemetry.js';
import { createProgress, fail, printResult } from './output.js';
import { compressionOf, type FederationSpec } from '../runtime/federated/federation.js';
import { runFeeders } from '../cluster/feeders.js';
import { writeShards } from '../trainer/shards.js';

/** Where `dcnr train --replicas` writes its shards: beside the store (a fresh run wipes the store, not them; they are rewritten). */
const shardDir = (store: string, model: ResolvedModel) => resolve(store, '..', `${model.spec.name}-shards`);

/** The spec's `federation` from the command line; rounds = steps / H, which must be whole. */
function federationOf(opts: TrainCliOptions): FederationSpec {
  if (opts.steps % opts.syncEvery !== 0) throw new Error(`--steps ${opts.steps} is not a whole number of rounds of --sync-every ${opts.syncEvery}: give a multiple of it`);
  if (opts.outer !== 'avg' && opts.outer !== 'nesterov') throw new Error(`--outer must be avg or nesterov, got ${JSON.stringify(opts.outer)}`);
  return {
    replicas: opts.replicas!,
    syncEvery: opts.syncEvery,
    rounds: opts.steps / opts.syncEvery,
    outer: opts.outer,
    ...(opts.outerLr !== undefined ? { outerLr: opts.outerLr } : {}),
    compress: opts.compress,
  };
}

export interface TrainCliOptions {
  model: string;
  /** `--model` was given on the command line (not its default): with `--init`, the file's spec is used otherwise. */
  modelGiven?: boolean;
  /** A safetensors file to start from (`dcnr export` writes one). */
  init?: string;
  steps: number;
  batch: number;
  seed: number;
  /** Unset: 0 without --nats, the running cluster's PNodes with --nats. */
  pnodes?: number;
  nats?: string;
  store: string;
  resume: boolean;
  json: boolean;
  depth?: number;
  checkpointEvery?: number;
  checkpointMs?: number;
  /** Keep a ledger (docs/ledger.md); false leaves the spec's setting. */
  ledger?: boolean;
  /** Federated rounds (docs/federated.md): replicas, each fed by its own `dcnr feed` process from its own shard. */
  replicas?: number;
  syncEvery: number;
  outer: string;
  outerLr?: number;
  compress: string;
}

/**
 * Where the VNodes run:
 * - `local`: in this process (`--pnodes 0`, with a private nats-server or `--nats`);
 * - `private`: a private cluster of N PNode processes this command starts (`--pnodes N`);
 * - `remote`: the PNodes of a running cluster (`--nats URL` without `--pnodes`).
 */
type Placement = { kind: 'local' } | { kind: 'private'; pnodes: number } | { kind: 'remote' };

export async function trainCommand(opts: TrainCliOptions): Promise<void> {
  if (opts.pnodes !== undefined && opts.pnodes > 0 && opts.nats) {
    fail('--pnodes N starts a private cluster; with --nats URL the running cluster\'s PNodes are used (omit --pnodes, or give --pnodes 0 to host the VNodes in this process)');
  }
  const where: Placement =
    opts.pnodes === undefined ? (opts.nats ? { kind: 'remote' } : { kind: 'local' }) : opts.pnodes === 0 ? { kind: 'local' } : { kind: 'private', pnodes: opts.pnodes };
  let model: ResolvedModel;
  let init: StartingParameters | undefined;
  try {
    // --init without --model: the model the file was exported from (its __metadata__.spec).
    const file = opts.init !== undefined ? readInitFile(opts.init) : undefined;
    if (file && !opts.modelGiven && !file.spec) throw new Error(`--init ${opts.init}: its __metadata__ has no model spec (not written by dcnr export): give --model`);
    const base = file && !opts.modelGiven ? file.spec! : loadModelSpec(opts.model);
    const spec = withOverrides(base, { pipelineDepth: opts.depth, checkpointEvery: opts.checkpointEvery, checkpointMs: opts.checkpointMs, ledger: opts.ledger || undefined });
    model = resolveModel(opts.replicas === undefined ? spec : { ...spec, federation: federationOf(opts) });
    if (model.federation && opts.init !== undefined) throw new Error('--init with --replicas is not supported yet: a federated run starts from its types\' init');
    if (model.federation && opts.resume) throw new Error('--resume with --replicas is not supported yet: start the federated run again');
    // The dataset too, before any cluster starts: a bad text file is refused here (docs/datasets.md).
    loadTrainingData(model);
    // And the file's tensors against the model: names, shapes, finite values.
    init = file && initFromFile(model, file);
    // The model is the file's own: then the tensors must still hash as it says (edited after export, else).
    const said = file?.file.metadata.paramsHash;
    const is = init && !opts.modelGiven && said !== undefined ? paramsHash(model, init.tensors) : said;
    if (is !== said) process.stderr.write(`dcnr train: note: --init ${opts.init} says paramsHash ${said!.slice(0, 12)}…, its tensors hash to ${is!.slice(0, 12)}…: changed after export\n`);
  } catch (err) {
    fail((err as Error).message);
  }

  let stopTelemetry: (() => Promise<void>) | undefined;
  try {
    stopTelemetry = await initTelemetry({ service: 'dcnr-train', mode: process.env.DCNR_OTEL });
  } catch (err) {
    fail((err as Error).message);
  }
  let server: NatsServer | undefined;
  let cluster: LocalCluster | undefined;
  let nc: NatsConnection | undefined;
  const storeDir = resolve(opts.store);
  const shutdown = async () => {
    await stopTelemetry?.();
    await nc?.close().catch(() => {});
    await cluster?.stop();
    await server?.stop();
  };
  process.once('SIGINT', () => {
    process.stderr.write('\ndcnr: interrupted; state is in KV, continue with --resume\n');
    void shutdown().finally(() => process.exit(130));
  });

  try {
    // A fresh run starts from an empty store; --resume keeps it.
    if (!opts.nats && !opts.resume) rmSync(storeDir, { recursive: true, force: true });
    if (where.kind === 'private') {
      process.stderr.write(`dcnr train: starting a private cluster of ${where.pnodes} PNodes (logs in ${storeDir}/logs)\n`);
      cluster = await startLocalCluster({ pnodes: where.pnodes, storeDir });
    } else if (!opts.nats) {
      server = (await startPrivateNats(storeDir)).server;
    }
    const url = opts.nats ?? cluster?.url ?? server!.url;
    await runTraining(opts, where, model, init, url, (c) => (nc = c));
  } catch (err) {
    fail((err as Error).stack ?? String(err), 1);
  } finally {
    await shutdown();
  }
}

/** Connect, wait for the cluster's PNodes (unless local), train with progress, print the result. */
async function runTraining(opts: TrainCliOptions, where: Placement, model: ResolvedModel, init: StartingParameters | undefined, url: string, connected: (nc: NatsConnection) => void): Promise<void> {
  const nc = await connectNats(url, `dcnr-train-${process.pid}`).catch((err) => fail(err.message));
  connected(nc); // the caller closes it on exit and on Ctrl-C
  let pnodeCount = 0;
  let clusterModes: string[] = [];
  if (where.kind !== 'local') {
    const view = await waitForPNodes(nc, where.kind === 'private' ? where.pnodes : 1, 60_000);
    const alive = view.pnodes.filter((p) => p.alive);
    pnodeCount = alive.length;
    clusterModes = [...new Set(alive.map((p) => p.capacity.kernelMode))];
  }
  const kernels = await createKernels();
  process.stderr.write(
    `dcnr train: ${model.spec.name} (${model.vnodes.length} VNodes, pipeline depth ${model.spec.pipelineDepth}), ` +
      `${opts.steps} steps × batch ${opts.batch}, seed ${opts.seed}, ` +
      (where.kind === 'local' ? `in this process, kernels ${kernels.mode}` : `on ${pnodeCount} PNodes (${clusterModes.join(', ')})`) +
      `, NATS ${url}${opts.resume ? ', resuming' : ''}${init ? `, from the parameters in ${init.source}` : ''}\n`,
  );
  const progress = createProgress(opts.steps, 'train');
  const fed = model.federation;
  if (fed) process.stderr.write(`dcnr train: federated: ${fed.replicas} replicas, a round every ${fed.syncEvery} steps (${fed.rounds} rounds), outer ${fed.outer} lr ${fed.outerLr}, compression ${compressionOf(model)}; replica 0's progress below\n`);
  const result = await train({
    nc,
    model,
    steps: opts.steps,
    batch: opts.batch,
    seed: opts.seed,
    kernels,
    resume: opts.resume,
    init,
    hostLocally: where.kind === 'local',
    // The R data owners, played here: the training split cut into R disjoint shard files, one `dcnr feed` process each.
    ...(fed ? { feedReplicas: (signal: AbortSignal | undefined) => runFeeders({ url, deployment: model.spec.name, shards: writeShards(shardDir(opts.store, model), model.spec.dataset, fed.replicas, opts.seed), signal }) } : {}),
    onProgress: ({ done, loss }) => progress.update(done, loss),
    onEvent: (e) => {
      if (e.type === 'rejected') process.stderr.write(`dcnr: rejected a message for ${e.vnode}: ${e.error}\n`);
      if (e.type === 'restarting') process.stderr.write(`dcnr: ${e.vnode} failed, restarting in ${e.delayMs} ms: ${e.error.split('\n')[0]}\n`);
    },
  });
  progress.stop();
  const { losses: _losses, federated, ...summary } = result;
  // The kernel mode that computed the parameters: this process's, or the PNodes'. A federated run's fields sit at the top (DESIGN.md).
  const out = { ...summary, ...federated, pnodes: pnodeCount, kernelMode: where.kind === 'local' ? kernels.mode : clusterModes.join(',') };
  printResult(out, opts.json, () =>
    [
      `model        ${out.model}`,
      `steps        ${out.steps} × batch ${out.batch} (resumed from ${out.resumedFrom})`,
      `final loss   ${out.finalLoss.toFixed(4)}`,
      `eval loss    ${out.evalLoss.toFixed(4)} (held-out split)`,
      ...(out.testAccuracy !== undefined ? [`test acc.    ${(out.testAccuracy * 100).toFixed(2)}%`] : []),
      `samples/s    ${out.samplesPerSec.toFixed(0)}${federated ? ' (every replica)' : ''}`,
      ...(federated
        ? [
            `federated    ${federated.replicas} replicas × ${federated.rounds} rounds of ${federated.syncEvery} steps, outer ${federated.outer}, ${federated.compress}`,
            `bytes        ${federated.bytesSent} sent (${federated.bytesPerStep.toFixed(0)} per step), ${federated.compressionRatio.toFixed(0)}× fewer than every-step gradients; replicas identical: ${federated.replicasIdentical}`,
          ]
        : []),
      `kernels      ${out.kernelMode}`,
      ...(out.initParamsHash !== undefined ? [`started from ${out.initParamsHash} (${init?.source})`] : []),
      `paramsHash   ${out.paramsHash}`,
      `duration     ${(out.durationMs / 1000).toFixed(1)} s`,
    ].join('\n'),
  );
}
