/**
 * The trainer: deploys a model, feeds it batches, waits for every VNode to apply
 * every update, then reads the parameters back for the hash and test accuracy.
 *
 * It is a client of the network like any other: it sends `fwd` batches to the first
 * VNode and `target`s to the loss, and reads per-step losses from the metrics
 * stream. It never touches a VNode's state: with `hostLocally` it also hosts every
 * VNode in this process (`dcnr train --pnodes 0`), through the same actor host a PNode uses.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { ActorHost, type HostEvent, type HostedExit } from './actor-host.js';
import { assignOwner, openBuckets, readDeployment, writeDeployment, type DeploymentRecord } from './cluster-state.js';
import { loadMnist, trainingBatch } from './data/mnist.js';
import { sendMessage } from './envelope.js';
import { accuracy, loadAllTensors, paramsHash, predict } from './evaluate.js';
import type { Kernels } from './kernels/types.js';
import { ensureDeploymentStreams, removeDeploymentStreams } from './mailbox.js';
import type { ResolvedModel } from './model.js';
import { ownerKey, Stream } from './protocol.js';
import { parseStepMetric } from './validate.js';
import { StateStore } from './state-store.js';
import { SpanKind, type ObservableResult } from '@opentelemetry/api';
import { startSpan, telemetryMetrics, type MessageSpan } from './telemetry.js';
import { readProgress } from './vnode-record.js';

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
}

export interface TrainResult {
  model: string;
  steps: number;
  batch: number;
  seed: number;
  /** Mean loss over the last min(20, steps) steps. */
  finalLoss: number;
  testAccuracy: number;
  paramsHash: string;
  samplesPerSec: number;
  durationMs: number;
  /** First step this process sent (0 unless resumed). */
  resumedFrom: number;
  losses: number[];
}

/** Deploy (or resume) and train to completion. */
export async function train(o: TrainOptions): Promise<TrainResult> {
  const started = Date.now();
  const { nc, model } = o;
  const dep = model.spec.name;
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const buckets = await openBuckets(nc);
  const store = new StateStore(buckets.state, { chunkBytes: chunkBytesFor(nc) });

  const pnode = o.pnode ?? `local-${process.pid}`;
  const record: DeploymentRecord = {
    spec: model.spec,
    seed: o.seed,
    batch: o.batch,
    steps: o.steps,
    createdAt: new Date().toISOString(),
    ...(o.hostLocally ? { hostedBy: 'local' as const } : {}),
  };
  let generation: number;
  if (o.resume) {
    const existing = await readDeployment(buckets.deployments, dep);
    if (!existing) throw new Error(`--resume: deployment ${dep} has no stored run to resume`);
    for (const key of ['seed', 'batch', 'steps'] as const) {
      if (existing[key] !== record[key]) throw new Error(`--resume: the stored run has ${key}=${existing[key]}, this command says ${record[key]}`);
    }
    if (JSON.stringify(existing.spec) !== JSON.stringify(model.spec)) throw new Error(`--resume: the stored run used a different model spec`);
    if (!!existing.hostedBy !== !!o.hostLocally) {
      throw new Error(`--resume: the stored run was ${existing.hostedBy ? 'hosted in one process (--pnodes 0)' : 'placed on a cluster'}; resume it the same way`);
    }
    generation = existing.generation;
  } else {
    // The record goes first: from then on no supervisor places this deployment, and
    // whatever an old run's PNodes still write carries the old generation.
    // (delete, not purge: KV watchers on nats-server 2.9 miss some of several
    // concurrent purges — rollup markers — but see every delete.)
    await buckets.deployments.delete(dep).catch(() => {});
    await removeDeploymentStreams(jsm, dep);
    await Promise.all(
      model.vnodes.map(async (v) => {
        await store.remove(dep, v.index);
        await buckets.owners.delete(ownerKey(dep, v.index)).catch(() => {});
      }),
    );
    generation = await writeDeployment(buckets.deployments, record);
  }
  await ensureDeploymentStreams(jsm, dep);

  let host: ActorHost | undefined;
  let stopRate: (() => void) | undefined;
  const hosted: Promise<HostedExit>[] = [];
  if (o.hostLocally) {
    host = new ActorHost({ nc, js, jsm, store, kernels: o.kernels, onEvent: o.onEvent });
    for (const v of model.vnodes) {
      const owner = await assignOwner(buckets.owners, dep, v.index, pnode);
      hosted.push(host.host({ model, seed: o.seed, generation }, v.index, owner.epoch));
    }
  }

  try {
    const last = model.vnodes.length - 1;
    const lossIndex = last;
    const data = loadMnist();
    const start = o.resume ? await lossProgress(store, dep, lossIndex) : 0;

    // One trace per step: its root span ends when the step's loss comes back.
    const stepSpans = new Map<number, MessageSpan>();
    const meters = telemetryMetrics();
    // samples/s as a gauge: the rate since the previous collection (no-op while metrics are off).
    let samplesDone = 0;
    let rateFrom = { at: performance.now(), samples: 0 };
    const observeRate = (r: ObservableResult) => {
      const now = performance.now();
      if (now > rateFrom.at) r.observe(((samplesDone - rateFrom.samples) * 1000) / (now - rateFrom.at), { 'dcnr.deployment': dep });
      rateFrom = { at: now, samples: samplesDone };
    };
    meters.samplesPerSec.addCallback(observeRate);
    stopRate = () => meters.samplesPerSec.removeCallback(observeRate);
    // Losses arrive in seq order from the loss VNode; a resumed trainer replays the old ones too.
    const losses: number[] = [];
    let lossesSeen = 0;
    let wake: (() => void) | undefined;
    // Short pulls: after a NATS restart a pending pull is gone, and the client only notices
    // when its idle heartbeats stop (half the expiry). The default 30 s stalled training.
    const metrics = await (await js.consumers.get(Stream.metrics(dep))).consume({ expires: 2000 });
    let badMetricSeen = false;
    const reading = (async () => {
      for await (const m of metrics) {
        // Anyone can publish on the metrics subject: a record that is not a step metric
        // of this run is skipped (and said once), never allowed to stop the reading.
        const metric = parseStepMetric(m.data, o.steps);
        if (!metric) {
          if (!badMetricSeen) process.stderr.write(`dcnr: ignoring a malformed record on ${m.subject} (not a step metric of this run)\n`);
          badMetricSeen = true;
          continue;
        }
        if (losses[metric.seq] === undefined) {
          losses[metric.seq] = metric.loss;
          stepSpans.get(metric.seq)?.end();
          stepSpans.delete(metric.seq);
          meters.steps.add(1, { 'dcnr.deployment': dep });
          meters.samples.add(metric.batch, { 'dcnr.deployment': dep });
          samplesDone += metric.batch;
          while (losses[lossesSeen] !== undefined) lossesSeen++;
          o.onProgress?.({ done: lossesSeen, steps: o.steps, loss: metric.loss });
          wake?.();
        }
      }
    })();
    const waitForLoss = () => new Promise<void>((resolve) => (wake = resolve));
    const stopReading = () => {
      metrics.stop();
      void reading.catch(() => {});
    };
    o.signal?.addEventListener('abort', stopReading, { once: true });

    const window = o.window ?? model.spec.pipelineDepth + 2;
    const trainStarted = Date.now();
    for (let seq = start; seq < o.steps; seq++) {
      while (seq >= Math.max(lossesSeen, start) + window) {
        o.signal?.throwIfAborted();
        await Promise.race([waitForLoss(), sleep(250)]);
      }
      const { x, t } = trainingBatch(data, o.seed, seq, o.batch);
      const span = startSpan('train step', undefined, { 'dcnr.deployment': dep, 'dcnr.seq': seq, 'dcnr.batch': o.batch }, SpanKind.PRODUCER);
      if (span.traceparent) stepSpans.set(seq, span);
      const traceparent = span.traceparent;
      // Re-sending is safe (message ids de-duplicate), so a NATS outage only delays the trainer.
      await retrying(o.signal, () => sendMessage(js, { deployment: dep, to: 0, kind: 'fwd', seq, epoch: 0, from: 'trainer', traceparent, tensor: { shape: [o.batch, model.inputFeatures], data: x } }));
      await retrying(o.signal, () => sendMessage(js, { deployment: dep, to: last, kind: 'target', seq, epoch: 0, from: 'trainer', traceparent, tensor: { shape: [o.batch, model.outputFeatures], data: t } }));
    }
    await retrying(o.signal, () => sendMessage(js, { deployment: dep, to: 0, kind: 'end', seq: o.steps, epoch: 0, from: 'trainer' }));

    // Done when every VNode's committed schedule says so (the last loss is not enough:
    // the first layers apply their last updates after it).
    while (!(await retrying(o.signal, () => allDone(store, model)))) {
      o.signal?.throwIfAborted();
      for (const h of hosted) {
        const exit = await Promise.race([h, Promise.resolve(undefined)]);
        if (exit === 'escalated' || exit === 'fenced') throw new Error(`a locally hosted VNode stopped: ${exit}`);
      }
      await sleep(25);
    }
    const trainMs = Date.now() - trainStarted;
    stopReading();

    const tensors = await loadAllTensors(store, model);
    const outputs = await predict(o.kernels, model, tensors, data.test.x, data.test.n);
    const tail = losses.slice(Math.max(0, o.steps - 20)).filter((l) => l !== undefined);
    return {
      model: dep,
      steps: o.steps,
      batch: o.batch,
      seed: o.seed,
      finalLoss: tail.reduce((a, b) => a + b, 0) / Math.max(1, tail.length),
      testAccuracy: accuracy(outputs, data.test.y, data.classes),
      paramsHash: paramsHash(model, tensors),
      samplesPerSec: ((o.steps - start) * o.batch) / Math.max(trainMs / 1000, 1e-3),
      durationMs: Date.now() - started,
      resumedFrom: start,
      losses,
    };
  } finally {
    stopRate?.();
    await host?.stopAll();
  }
}

/**
 * Run `fn` until it succeeds, retrying errors of a NATS outage (timeouts, no responders,
 * a connection in reconnect) for up to two minutes; other errors and an abort end it.
 */
async function retrying<T>(signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 120_000;
  for (let attempt = 0; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await fn();
    } catch (err) {
      const transient = /timeout|no responders|503|disconnect|reconnect|CONNECTION_REFUSED/i.test(String((err as Error)?.message ?? err) + String((err as Error)?.name ?? ''));
      if (!transient || Date.now() > deadline) throw err;
      await sleep(Math.min(1000, 50 * 2 ** attempt));
    }
  }
}

/** KV blob chunk size for this connection: under the server's max payload with room for headers. */
export function chunkBytesFor(nc: NatsConnection): number {
  const max = nc.info?.max_payload ?? 1024 * 1024;
  return Math.max(64 * 1024, Math.min(max - 64 * 1024, 4 * 1024 * 1024));
}

/** How many steps the loss VNode has completed (where a resumed trainer starts sending). */
async function lossProgress(store: StateStore, dep: string, lossIndex: number): Promise<number> {
  const c = await store.read(dep, lossIndex);
  if (!c) return 0;
  const progress = readProgress(c.meta);
  if (!progress.ok) throw new Error(`--resume: the stored state of ${dep}.${lossIndex} is unreadable: ${progress.error}`);
  return progress.value.schedule.targetNext;
}

/** Every VNode's committed record says its schedule is complete (an unreadable one: not yet). */
async function allDone(store: StateStore, model: ResolvedModel): Promise<boolean> {
  for (const v of model.vnodes) {
    const c = await store.read(model.spec.name, v.index);
    const progress = c && readProgress(c.meta, { role: v.def.role, depth: model.spec.pipelineDepth });
    if (!progress?.ok || !progress.value.complete) return false;
  }
  return true;
}
