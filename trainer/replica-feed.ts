/**
 * A federated replica's data owner (`dcnr feed`, docs/federated.md): it reads the
 * deployment record, opens ONE shard file — its own — and feeds replica r's first VNode
 * and loss from it, `window` steps ahead of that replica's last loss, then `end`. It
 * reads no other data: raw data never leaves it. Re-sending is safe (receivers'
 * watermarks drop duplicates), so a restarted feeder starts from its replica's committed
 * progress and goes on.
 */
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { trainingBatch } from '../runtime/data/mnist.js';
import { sendMessage, type Envelope } from '../runtime/envelope.js';
import { replicaEnds } from '../runtime/federated/federation.js';
import { openBuckets, readDeployment } from '../runtime/cluster-state.js';
import { contextOf, resolveModel, type ResolvedModel } from '../runtime/model.js';
import { textTrainingBatch } from '../runtime/data/text.js';
import type { Tensor } from '../runtime/tensor.js';
import { vnodeId } from '../runtime/protocol.js';
import { signerOf } from '../runtime/security/signing.js';
import { chunkBytesFor, StateStore } from '../runtime/state-store.js';
import { readProgress } from '../runtime/vnode-record.js';
import { readLosses } from './losses.js';
import { retrying } from './retry.js';
import { readShard } from './shards.js';

export interface ReplicaFeedOptions {
  nc: NatsConnection;
  deployment: string;
  replica: number;
  /** The one data file this feeder reads. */
  shard: string;
  signal?: AbortSignal;
  onProgress?: (p: { done: number; steps: number; loss: number }) => void;
}

export interface ReplicaFeedResult {
  deployment: string;
  replica: number;
  shard: string;
  rows: number;
  steps: number;
  /** First step sent (a restarted feeder goes on from its replica's committed progress). */
  from: number;
}

/** Where replica `r`'s feeds stand in KV: the lowest seq its first VNode (`fwd`) or its loss (`target`) has not committed. */
async function replicaProgress(store: StateStore, model: ResolvedModel, r: number): Promise<number> {
  const { first, loss } = replicaEnds(model, r);
  const read = async (index: number) => {
    const c = await store.read(model.spec.name, index);
    const p = c && readProgress(c.meta);
    return p && p.ok ? p.value.schedule : null;
  };
  const [f, l] = await Promise.all([read(first), read(loss)]);
  return Math.min(f?.fwdNext ?? 0, l?.targetNext ?? 0);
}

export async function feedReplica(o: ReplicaFeedOptions): Promise<ReplicaFeedResult> {
  // A NATS outage at start-up only delays a feeder, as it delays a trainer.
  const buckets = await retrying(o.signal, () => openBuckets(o.nc));
  const record = await retrying(o.signal, () => readDeployment(buckets.deployments, o.deployment));
  if (!record) throw new Error(`no deployment named ${o.deployment}: dcnr train --replicas R deploys one`);
  const model = resolveModel(record.spec, { shapes: record.shapes });
  const fed = model.federation;
  if (!fed) throw new Error(`${o.deployment} is not federated (its spec has no federation): nothing to feed per replica`);
  if (!Number.isInteger(o.replica) || o.replica < 0 || o.replica >= fed.replicas) throw new Error(`--replica must be 0..${fed.replicas - 1} for ${o.deployment}, got ${o.replica}`);
  const shard = readShard(o.shard, { replica: o.replica, replicas: fed.replicas });
  if (shard.header.dataset !== model.spec.dataset) throw new Error(`${o.shard} holds ${shard.header.dataset}, ${o.deployment} trains on ${model.spec.dataset}`);
  if (shard.kind === 'text' && shard.text.vocab.length !== model.outputFeatures) {
    throw new Error(`${o.shard} has a vocabulary of ${shard.text.vocab.length} tokens, ${o.deployment} predicts ${model.outputFeatures}: its owner must shard with the dataset's whole vocabulary`);
  }
  const T = contextOf(model.spec);
  // The replica's own batches: the shard's rows in a seeded order per epoch (mnist), or windows of its examples' stream (text).
  const batchOf = (seq: number, batch: number): { x: Tensor; t: Tensor } => {
    if (shard.kind === 'text') {
      const { x, t } = textTrainingBatch(shard.text, record.seed, seq, batch, T);
      return { x: { shape: [batch, T], data: x }, t: { shape: [batch, T], data: t } };
    }
    const { x, t } = trainingBatch(shard.data, record.seed, seq, batch);
    return { x: { shape: [batch, shard.data.features], data: x }, t: { shape: [batch, shard.data.classes], data: t } };
  };
  const { batch, steps } = record;
  const store = new StateStore(buckets.state, { chunkBytes: chunkBytesFor(o.nc) });
  const signer = signerOf(o.nc);
  const { first, loss } = replicaEnds(model, o.replica);
  const lossId = vnodeId(o.deployment, loss, model.vnodes[loss].def.type);
  const losses = await readLosses(jetstream(o.nc), o.deployment, steps, (m, done) => o.onProgress?.({ done, steps, loss: m.loss }), lossId);
  o.signal?.addEventListener('abort', () => losses.stop(), { once: true });
  const send = (e: Envelope) => retrying(o.signal, () => sendMessage(o.nc, e, signer));
  const from = await retrying(o.signal, () => replicaProgress(store, model, o.replica));
  const window = model.spec.pipelineDepth + 2;
  try {
    const common = { deployment: o.deployment, epoch: 0, from: 'trainer' };
    for (let seq = from; seq < steps; seq++) {
      while (seq >= Math.max(losses.done(), from) + window) {
        o.signal?.throwIfAborted();
        await Promise.race([losses.next(), sleep(250)]);
      }
      const { x, t } = batchOf(seq, batch);
      await send({ ...common, seq, to: first, kind: 'fwd', tensor: x });
      await send({ ...common, seq, to: loss, kind: 'target', tensor: t });
    }
    await send({ ...common, seq: steps, to: first, kind: 'end' });
    // Until the replica's last loss: a feeder that left early could not re-send what a crash lost.
    while (losses.done() < steps) {
      o.signal?.throwIfAborted();
      await Promise.race([losses.next(), sleep(250)]);
    }
  } finally {
    losses.stop();
  }
  return { deployment: o.deployment, replica: o.replica, shard: o.shard, rows: shard.header.rows, steps, from };
}
