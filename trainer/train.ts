/**
 * The trainer: deploys a model, feeds it batches, waits for every VNode to apply every
 * update, then reads the parameters back for the hash and test accuracy. One file per
 * concern beside this one, wired here:
 *   deploy.ts      the deployment record and streams (a fresh run, or --resume)
 *   feed.ts        batches in, `window` steps ahead of the last loss
 *   local-feed.ts  ... in memory only to VNodes of this process (`--pnodes 0`)
 *   losses.ts      per-step losses from the metrics stream
 *   completion.ts  done = every VNode's committed schedule is complete
 *   evaluate.ts    test accuracy and paramsHash from the parameters in KV
 *
 * It is a client of the network like any other: it sends `fwd` batches to the first
 * VNode and `target`s to the loss and reads losses from the metrics stream; it reads
 * the VNodes' committed state only to see completion and to evaluate. With
 * `hostLocally` (`dcnr train --pnodes 0`) it also hosts every VNode in this process,
 * through the same actor host a PNode uses.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { ActorHost, type HostEvent, type HostedExit } from '../runtime/actor-host.js';
import { stateAuthOf } from '../runtime/security/verifier.js';
import { signerOf } from '../runtime/security/signing.js';
import { assignOwner, openBuckets, subscribeClusterEvents, type DeploymentRecord } from '../runtime/cluster-state.js';
import type { Kernels } from '../runtime/kernels/types.js';
import { checkpointPolicy, stateBytesOf, type ResolvedModel } from '../runtime/model.js';
import { loadInitialParameters } from '../runtime/initial-parameters.js';
import { chunkBytesFor, StateStore } from '../runtime/state-store.js';
import { restartsMayLoseWrites, watchServerRestarts, type ServerRestart } from '../runtime/server-restarts.js';
import { feedProgress, waitUntilDone } from './completion.js';
import { loadTrainingData } from './data.js';
import { deploy } from './deploy.js';
import { evaluate, paramsHash } from './evaluate.js';
import { feed, feedMessage } from './feed.js';
import { federatedSummary, type FederatedSummary } from './federated.js';
import { frameProblem } from '../runtime/federated/federation.js';
import { vnodeId } from '../runtime/protocol.js';
import { localFeed, type LocalFeed } from './local-feed.js';
import { readLosses } from './losses.js';
import { stepTelemetry } from './step-telemetry.js';
import type { StartingParameters } from './export.js';

export interface TrainOptions {
  nc: NatsConnection;
  model: ResolvedModel;
  steps: number;
  batch: number;
  seed: number;
  /** Kernels for evaluation, and for the VNodes when hosting locally. */
  kernels: Kernels;
  /** Continue the deployment's run from what KV holds instead of starting afresh. @default false */
  resume?: boolean;
  /** Host every VNode in this process. @default false */
  hostLocally?: boolean;
  /** Name of this process as an owner of VNodes. @default `local-<pid>` */
  pnode?: string;
  /** Steps sent ahead of the last loss received. @default pipelineDepth + 2 */
  window?: number;
  onProgress?: (p: { done: number; steps: number; loss: number | undefined }) => void;
  onEvent?: (e: HostEvent) => void;
  /** Abort training (e.g. a watchdog that sees no live PNode): `train` rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Start from these parameters instead of the types' random init (`dcnr train --init`):
   * per VNode index, checked against the model (runtime/parameters.ts `fromNamedTensors`).
   * `source` names them for people (the file). @default the types' init
   */
  init?: Pick<StartingParameters, 'tensors'> & Partial<StartingParameters>;
  /**
   * A federated model (spec `federation`): start its replicas' data owners — one process
   * per replica, each with its own shard (`dcnr feed`, trainer/replica-feed.ts) — and
   * resolve when every one has fed its replica to the end. Required then: this process
   * holds no replica's data.
   */
  feedReplicas?: (signal: AbortSignal | undefined) => Promise<void>;
}

export interface TrainResult {
  model: string;
  steps: number;
  batch: number;
  seed: number;
  /** Mean loss over the last min(20, steps) steps. */
  finalLoss: number;
  /** Mean loss on the held-out split (docs/datasets.md), every model. */
  evalLoss: number;
  /** Share of the held-out split classified right: classifiers (mnist) only. */
  testAccuracy?: number;
  paramsHash: string;
  /** With `init`: the paramsHash of the parameters the run started from, as read back from KV. */
  initParamsHash?: string;
  samplesPerSec: number;
  durationMs: number;
  /** First step this process sent (0 unless resumed). */
  resumedFrom: number;
  /** Pipeline depth and checkpoint policy the run used. */
  pipelineDepth: number;
  checkpointEvery: number;
  checkpointMs: number;
  /** KV bytes the VNodes' checkpoints wrote per step (blobs + metas); null when they ran elsewhere (PNodes). */
  persistedBytesPerStep: number | null;
  losses: number[];
  /**
   * Times the run was rolled back because the supervisor quarantined a PNode that computed
   * wrong results (supervisor/audit.ts): at which step, whom, where it was caught. Absent: never.
   */
  rollbacks?: Rollback[];
  /** A federated run (docs/federated.md): its rounds and what they sent. */
  federated?: FederatedSummary;
}

export interface Rollback {
  atStep: number;
  /**
   * Why: `quarantine`, a PNode caught computing wrong results (supervisor/audit.ts);
   * `nats-restart`, the nats-server of an unreplicated store restarted and may have lost
   * writes it had acknowledged (runtime/server-restarts.ts).
   */
  cause: 'quarantine' | 'nats-restart';
  /** The generation of the run that was rolled back (its dead letters are the rolled-back run's). */
  generation?: number;
  /** A quarantine: whom, and where it was caught. */
  pnode?: string;
  vnode?: string;
  seq?: number;
  detail: string;
}

/** Rollbacks a run makes at most: a network that quarantines a liar (or a server that crashes) every time has more faults than this run can outlast. */
const MAX_ROLLBACKS = 3;

/** The run was stopped to start again: a PNode that computed for it was caught lying, or the server may have lost its writes. */
class RolledBack extends Error {
  constructor(readonly rollback: Rollback) {
    super(`rolled back at step ${rollback.atStep}: ${rollback.detail}`);
  }
}

/**
 * Deploy (or resume) and train to completion, starting the run again from its first step
 * as a fresh generation when what it has done cannot be trusted:
 * - With the ledger on, a quarantine (a PNode caught computing wrong results by spot
 *   re-execution, supervisor/audit.ts): every update since the start may hold the liar's
 *   work — its outputs reached every VNode through the forward and backward passes — so
 *   the run starts again without it (docs/ledger.md: the rollback today goes back to the
 *   start; a consistent cut of verified anchors would go back less far).
 * - A restart of the nats-server of an unreplicated store: a crashed nats-server 2.9 can
 *   have lost the writes it acknowledged last — a checkpoint, an input, a ledger entry —
 *   and no client can tell which (runtime/server-restarts.ts), so nothing since the start
 *   is known to be whole. Not on a replicated store, nor with `DCNR_NATS_SYNC=always`.
 * Deterministic, the run ends with exactly the parameters a run without the fault has.
 */
export async function train(o: TrainOptions): Promise<TrainResult> {
  const rollbacks: Rollback[] = [];
  // One watch for every attempt, from before the first await: a restart at any time is seen.
  let onRestart: ((r: ServerRestart) => void) | undefined;
  const restarts = watchServerRestarts(o.nc, (r) => onRestart?.(r));
  try {
    const mayLose = await restartsMayLoseWrites(o.nc);
    for (let attempt = 0; ; attempt++) {
      const stop = new AbortController();
      const onOuter = () => stop.abort(o.signal!.reason);
      if (o.signal?.aborted) stop.abort(o.signal.reason);
      o.signal?.addEventListener('abort', onOuter, { once: true });
      let done = 0;
      let generation: number | undefined;
      let evaluated = false;
      const rollBack = (r: Omit<Rollback, 'atStep' | 'generation'>) => {
        if (!stop.signal.aborted) stop.abort(new RolledBack({ atStep: done, ...(generation !== undefined ? { generation } : {}), ...r }));
      };
      const watch = o.model.spec.ledger
        ? subscribeClusterEvents(o.nc, (e, source) => {
            if (e.type !== 'quarantined' || source !== 'supervisor' || !e.vnode.startsWith(`${o.model.spec.name}.`)) return;
            // Even once evaluated: the parameters hold the liar's work all the same.
            rollBack({ cause: 'quarantine', pnode: e.pnode, vnode: e.vnode, seq: e.seq, detail: `${e.pnode} was quarantined (${e.vnode} seq ${e.seq}); starting again without it` });
          })
        : undefined;
      onRestart = (r) => {
        // Once the parameters are read and scored, a restart cannot have changed them.
        if (mayLose && !evaluated) rollBack({ cause: 'nats-restart', detail: `the nats-server restarted (${r.from.slice(0, 8)}… → ${r.to.slice(0, 8)}…) on an unreplicated store and may have lost acknowledged writes; starting again from the first step` });
      };
      try {
        const r = await trainOnce({
          ...o,
          resume: attempt === 0 ? o.resume : false,
          signal: stop.signal,
          onProgress: (p) => {
            done = p.done;
            o.onProgress?.(p);
          },
          deployed: (g) => void (generation = g),
          evaluated: () => void (evaluated = true),
        });
        if (!(stop.signal.reason instanceof RolledBack)) return rollbacks.length ? { ...r, rollbacks } : r;
        throw stop.signal.reason;
      } catch (err) {
        const reason = stop.signal.reason;
        if (!(reason instanceof RolledBack) || o.signal?.aborted) throw err;
        if (attempt >= MAX_ROLLBACKS) throw new Error(`${reason.message} — but this run was already rolled back ${MAX_ROLLBACKS} times (${rollbacks.map((b) => b.cause).join(', ')}): giving up`);
        rollbacks.push(reason.rollback);
        process.stderr.write(`train: ${reason.message}\n`);
      } finally {
        watch?.unsubscribe();
        onRestart = undefined;
        o.signal?.removeEventListener('abort', onOuter);
      }
    }
  } finally {
    restarts.stop();
  }
}

/** `deployed`: called with the run's generation once deployed; `evaluated`: once the parameters are read and scored (a server restart after that cannot have changed them). */
async function trainOnce(o: TrainOptions & { deployed?: (generation: number) => void; evaluated?: () => void }): Promise<TrainResult> {
  const started = Date.now();
  const { nc, model } = o;
  // Before anything is deployed: a dataset that cannot be read, or that the model does not fit, stops here.
  const data = loadTrainingData(model);
  const dep = model.spec.name;
  const fed = model.federation;
  if (fed && !o.feedReplicas) throw new Error(`${dep} is federated: its replicas are fed by their own data owners (dcnr feed), and none were given`);
  const tooBig = fed && frameProblem(model);
  if (tooBig) throw new Error(tooBig);
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const buckets = await openBuckets(nc);
  const store = new StateStore(buckets.state, { chunkBytes: chunkBytesFor(nc), auth: await stateAuthOf(nc) });
  // Auth on: we sign our feeds, and the record names our key as the only one that may.
  const signer = signerOf(nc);
  const record: Omit<DeploymentRecord, 'init'> = {
    spec: model.spec,
    seed: o.seed,
    batch: o.batch,
    steps: o.steps,
    createdAt: new Date().toISOString(),
    shapes: model.vnodes.map((v) => ({ inFeatures: v.inFeatures, outFeatures: v.outFeatures, stateBytes: stateBytesOf(v, o.batch, model.spec) })),
    ...(o.hostLocally ? { hostedBy: 'local' as const } : {}),
    ...(signer ? { trainerKey: signer.publicKey } : {}),
  };
  const init = o.init && { tensors: o.init.tensors, paramsHash: paramsHash(model, o.init.tensors), ...(o.init.source !== undefined ? { source: o.init.source } : {}) };
  const { generation, init: stored } = await deploy({ jsm, buckets, store, model, record, resume: !!o.resume, init });
  o.deployed?.(generation);
  // What the VNodes will start from, read back from KV as they read it: its hash is the run's starting point.
  const initParamsHash = stored && o.init && paramsHash(model, await Promise.all(model.vnodes.map((v) => loadInitialParameters(store, dep, v, stored, o.init!.tensors[v.index]))));

  let host: ActorHost | undefined;
  const hosted: Promise<HostedExit>[] = [];
  const telemetry = stepTelemetry(dep);
  // The data owners stop with this attempt, however it ends (runtime errors, rollback, abort).
  const owners = new AbortController();
  const stopOwners = () => owners.abort(o.signal?.reason);
  o.signal?.addEventListener('abort', stopOwners, { once: true });
  let losses: Awaited<ReturnType<typeof readLosses>> | undefined;
  let local: LocalFeed | undefined;
  // Everything this attempt starts is stopped in `finally`, however far it got (a rollback
  // aborts it while NATS is away, when any of these can fail).
  try {
    if (o.hostLocally) {
      const pnode = o.pnode ?? `local-${process.pid}`;
      host = new ActorHost({ nc, js, jsm, store, kernels: o.kernels, onEvent: o.onEvent });
      for (const v of model.vnodes) {
        const owner = await assignOwner(buckets.owners, dep, v.index, pnode, { signed: signer && { epochs: buckets.epochs, publicKey: signer.publicKey, generation } }).catch((err: Error) => {
          if (!/permissions violation/i.test(err.message)) throw err;
          throw new Error('hosting every VNode in this process (--pnodes 0) makes it their owner: on a network with auth that takes the supervisor (admin) credentials; a trainer\'s may not record owners');
        });
        hosted.push(host.host({ model, seed: o.seed, generation, trainerKey: signer?.publicKey, init: stored }, v.index, owner.epoch));
      }
    }
    // A federated run's progress is replica 0's losses (every replica reports its own).
    const lossVNode = fed ? vnodeId(dep, fed.perReplica - 1, model.vnodes[fed.perReplica - 1].def.type) : undefined;
    const read = await readLosses(js, dep, o.steps, (metric, done) => {
      telemetry.finished(metric);
      o.onProgress?.({ done, steps: o.steps, loss: metric.loss });
    }, lossVNode);
    losses = read;
    o.signal?.addEventListener('abort', () => read.stop(), { once: true });
    const run = { model, data, seed: o.seed, batch: o.batch, steps: o.steps };
    local = localFeed({ nc, deployment: dep, remake: (to, kind, seq) => feedMessage(run, to, kind, seq), signer, signal: o.signal, log: (line) => process.stderr.write(`train: ${line}\n`) });
    const from = o.resume ? await feedProgress(store, model) : 0;
    const trainStarted = Date.now();
    const bytesBefore = store.bytesWritten;
    const window = o.window ?? model.spec.pipelineDepth + 2;
    if (fed) await Promise.all([o.feedReplicas!(owners.signal), waitUntilDone(store, model, hosted, o.signal)]);
    else await feed({ ...run, nc, from, window, losses, telemetry, signal: o.signal, signer, local });
    await waitUntilDone(store, model, hosted, o.signal);
    await local.settled();
    const trainMs = Date.now() - trainStarted;
    read.stop();

    // A federated model is scored as replica 0 (indices 0..N−1): after the last round every replica holds the same parameters.
    const scores = await evaluate(store, fed?.base ?? model, o.kernels, data);
    const federated = fed && (await federatedSummary(store, model, o.steps, scores.paramsHash));
    o.evaluated?.();
    const { evalLoss, testAccuracy } = scores;
    const tail = read.losses.slice(Math.max(0, o.steps - 20)).filter((l) => l !== undefined);
    return {
      model: dep,
      steps: o.steps,
      batch: o.batch,
      seed: o.seed,
      finalLoss: tail.reduce((a, b) => a + b, 0) / Math.max(1, tail.length),
      evalLoss,
      ...(testAccuracy !== undefined ? { testAccuracy } : {}),
      paramsHash: scores.paramsHash,
      ...(initParamsHash ? { initParamsHash } : {}),
      // A federated run trains every replica on its own batches: its samples are all of theirs.
      samplesPerSec: ((o.steps - from) * o.batch * (fed?.replicas ?? 1)) / Math.max(trainMs / 1000, 1e-3),
      durationMs: Date.now() - started,
      resumedFrom: from,
      pipelineDepth: model.spec.pipelineDepth,
      checkpointEvery: checkpointPolicy(model.spec).every,
      checkpointMs: checkpointPolicy(model.spec).ms,
      persistedBytesPerStep: o.hostLocally ? Math.round((store.bytesWritten - bytesBefore) / Math.max(1, o.steps - from)) : null,
      losses: read.losses,
      ...(federated ? { federated } : {}),
    };
  } finally {
    owners.abort(new Error('the run ended'));
    o.signal?.removeEventListener('abort', stopOwners);
    local?.stop();
    losses?.stop();
    telemetry.stop();
    await host?.stopAll();
  }
}
