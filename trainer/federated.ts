/**
 * What a federated run reports (docs/federated.md): its rounds, the bytes they sent, and
 * whether every replica and aggregator ended with the same parameters.
 *
 * Bytes: every round, each replica's layers send their aggregators one `delta` frame and
 * get one `sync` frame back. A frame's size is a function of the compression and the
 * layer's shapes only (compress.ts: top-k keeps a fixed count, int8 a fixed block layout,
 * PowerSGD fixed factors), so the payload bytes are counted by encoding each layer once
 * (runtime/federated/rounds.test.ts checks the count against the frames a round makes). The
 * baseline is what data-parallel training without rounds sends: every step, each replica's
 * full float32 gradient up and the averaged gradient back.
 */
import { compressionOf, parameterBytes, roundBytes, roundShapes } from '../runtime/federated/federation.js';
import type { ResolvedModel } from '../runtime/model.js';
import type { StateStore } from '../runtime/state-store.js';
import { loadAllTensors, paramsHash } from './evaluate.js';

export interface FederatedSummary {
  replicas: number;
  syncEvery: number;
  rounds: number;
  outer: 'avg' | 'nesterov';
  compress: string;
  /** Payload bytes of every delta and sync frame of the run, both ways. */
  bytesSent: number;
  bytesPerStep: number;
  /** Bytes of uncompressed every-step synchronisation (a full gradient up and back per replica per step) over `bytesSent`. */
  compressionRatio: number;
  /** Every replica's parameters and every aggregator's hash alike (they must: rounds end in a common update). */
  replicasIdentical: boolean;
}

export async function federatedSummary(store: StateStore, model: ResolvedModel, steps: number, hash: string): Promise<FederatedSummary> {
  const fed = model.federation!;
  const { up, down } = roundBytes(model);
  const bytesSent = fed.rounds * fed.replicas * (up + down);
  const baseline = steps * fed.replicas * 2 * parameterBytes(fed.base);
  const all = await loadAllTensors(store, model);
  const N = fed.perReplica;
  let identical = true;
  for (let r = 1; r < fed.replicas; r++) identical &&= paramsHash(fed.base, all.slice(r * N, (r + 1) * N)) === hash;
  // Each aggregator's θ is its layer's parameters: put them where replica 0's layers are, and hash that.
  const fromAggregators = all.slice(0, N).map((t) => ({ ...t }));
  for (const v of model.vnodes) if (v.fed?.layer) for (const { name } of roundShapes(v)) fromAggregators[v.fed.base][name] = all[v.index][name];
  identical &&= paramsHash(fed.base, fromAggregators) === hash;
  return {
    replicas: fed.replicas,
    syncEvery: fed.syncEvery,
    rounds: fed.rounds,
    outer: fed.outer,
    compress: compressionOf(model),
    bytesSent,
    bytesPerStep: bytesSent / steps,
    compressionRatio: baseline / bytesSent,
    replicasIdentical: identical,
  };
}
