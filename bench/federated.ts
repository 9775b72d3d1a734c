/**
 * federated (issue #17): federated rounds on mnist-mlp, batch 64, a round every H = 50
 * steps, one process each (`--pnodes 0`), and the SAME TOTAL SAMPLES in every row: the
 * plain run (R = 1) takes S steps, R = 2 and R = 3 replicas take S/R steps each (S = 3000,
 * where mnist-mlp has converged — 1800 and 3000 steps end within 0.1 point — `--quick`
 * 600). Rows: R = 1; R = 2 and R = 3 with each compression (none, int8, topk:0.1,
 * powersgd:16) with FedAvg at outer lr 2 (the best measured); R = 3 topk:0.1 with
 * FedAvg's plain lr 1 and with Nesterov at DiLoCo's 0.7 / 0.9. Each row: samples/s (every replica's), bytes per step and the compression
 * ratio (from `dcnr train`'s JSON: every round's frames both ways, against uncompressed
 * every-step gradients), test accuracy, eval loss, whether every replica ended identical,
 * and the run's wall time.
 *
 * On one 2-core machine the replicas share the cores, so the rows cannot show replicas
 * going faster; the scaling model says what the measured split predicts for separate
 * machines ({@link predictScaling}):
 * - compute: t_step = batch / samples/s of the plain run (its training phase only);
 * - communication: b = bytesSent / rounds / replicas of the R = 3 topk:0.1 row (one
 *   replica's delta frames up and sync frames down per round, all layers);
 * - R machines each run S/R steps at t_step; every round, every replica's frames both
 *   ways go through the aggregator's one link: a round costs R·b / 12.5 MB/s (100 Mbit/s)
 *   + 0.05 s (one round trip), and compute does not overlap it. Rounds may be fractional
 *   (R = 30 runs 100 steps of 3000: 2 rounds of 50; of 1800, 1.2), the cost is per step amortised.
 * - the alternative, data-parallel without rounds: every step every replica sends its
 *   full float32 gradient up and gets the average back, 2·P·4 bytes (P parameters, read
 *   off the same row: bytesSent · compressionRatio / (steps · replicas)), a step costs
 *   t_step + R·2·P·4 / 12.5 MB/s + 0.05 s.
 * - R = 1 is the plain run: S·t_step, no link.
 *
 * `DCNR_BENCH_FEDERATED_SMOKE=1`: a check that the benchmark runs, not a measurement —
 * S = 300 and only the rows R = 1, R = 3 none, R = 3 topk:0.1 (the result says `smoke`).
 */
import { join } from 'node:path';
import { runDcnr } from './process.js';
import { sig } from './stats.js';
import type { Benchmark } from './types.js';

interface TrainJson {
  samplesPerSec: number;
  testAccuracy: number;
  evalLoss: number;
  paramsHash: string;
  durationMs: number;
  steps: number;
  /** Federated runs only. */
  replicas?: number;
  rounds?: number;
  bytesSent?: number;
  bytesPerStep?: number;
  compressionRatio?: number;
  replicasIdentical?: boolean;
}

export interface FederatedRow {
  replicas: number;
  /** null: the plain run (no rounds). */
  compress: string | null;
  outer: 'avg' | 'nesterov' | null;
  /** null: the outer optimizer's default. */
  outerLr: number | null;
  /** Steps of each replica (S / replicas). */
  steps: number;
  rounds: number | null;
  /** Every replica's samples per second of training. */
  samplesPerSec: number;
  /** Payload bytes of every round's frames, both ways, all replicas. */
  bytesSent: number | null;
  /** bytesSent / steps. */
  bytesPerStep: number | null;
  /** Uncompressed every-step synchronisation's bytes / bytesSent. */
  compressionRatio: number | null;
  testAccuracy: number;
  evalLoss: number;
  replicasIdentical: boolean | null;
  /** The whole `dcnr train` run (deploy, feeders and evaluation included). */
  durationMs: number;
  paramsHash: string;
}

/** One prediction of the scaling model: the same total samples on `machines` machines. */
export interface ScalingPrediction {
  machines: number;
  federatedS: number;
  federatedSpeedup: number;
  dataParallelS: number;
  dataParallelSpeedup: number;
}

export interface ScalingModel {
  /** The link through the aggregator, bytes/s (100 Mbit/s). */
  linkBytesPerSec: number;
  /** Latency of one exchange (a round, or a data-parallel step), seconds. */
  roundTripS: number;
  /** Compute seconds per step: batch / the plain run's samples/s. */
  stepS: number;
  /** One replica's frames of one round, up and down (the R = 3 topk:0.1 row). */
  bytesPerRoundPerReplica: number;
  /** Data-parallel every step: 2·P·4 bytes per replica per step. */
  dataParallelBytesPerStepPerReplica: number;
  parameters: number;
  predictions: ScalingPrediction[];
}

export interface FederatedBench {
  model: 'mnist-mlp';
  batch: number;
  /** S: steps of the plain run; every row trains on S·batch samples. */
  totalSteps: number;
  syncEvery: number;
  /** `DCNR_BENCH_FEDERATED_SMOKE=1`: a reduced run that only checks the benchmark works. */
  smoke: boolean;
  rows: FederatedRow[];
  scaling: ScalingModel;
}

/** 100 Mbit/s. */
export const LINK_BYTES_PER_SEC = 12.5e6;
export const ROUND_TRIP_S = 0.05;

/**
 * The scaling model of this file's header: wall seconds to train `totalSteps`·batch
 * samples on each of `machines` (every one a replica doing totalSteps/R steps), with
 * federated rounds every `syncEvery` steps and with data-parallel every-step exchange.
 * Pure arithmetic, tested in federated.test.ts.
 */
export function predictScaling(o: {
  stepS: number;
  bytesPerRoundPerReplica: number;
  dataParallelBytesPerStepPerReplica: number;
  totalSteps: number;
  syncEvery: number;
  machines: number[];
  linkBytesPerSec?: number;
  roundTripS?: number;
}): ScalingPrediction[] {
  const link = o.linkBytesPerSec ?? LINK_BYTES_PER_SEC;
  const rtt = o.roundTripS ?? ROUND_TRIP_S;
  const alone = o.totalSteps * o.stepS;
  return o.machines.map((R) => {
    const steps = o.totalSteps / R;
    const federatedS = R === 1 ? alone : steps * o.stepS + (steps / o.syncEvery) * ((R * o.bytesPerRoundPerReplica) / link + rtt);
    const dataParallelS = R === 1 ? alone : steps * (o.stepS + (R * o.dataParallelBytesPerStepPerReplica) / link + rtt);
    return { machines: R, federatedS, federatedSpeedup: alone / federatedS, dataParallelS, dataParallelSpeedup: alone / dataParallelS };
  });
}

interface RowSpec {
  replicas: number;
  compress: string | null;
  outer: 'avg' | 'nesterov' | null;
  outerLr: number | null;
}

const COMPRESSIONS = ['none', 'int8', 'topk:0.1', 'powersgd:16'];
/** The row the scaling model reads its bytes from. */
const MODEL_ROW = { replicas: 3, compress: 'topk:0.1', outer: 'avg' } as const;

function rowSpecs(smoke: boolean): RowSpec[] {
  const plain: RowSpec = { replicas: 1, compress: null, outer: null, outerLr: null };
  if (smoke) return [plain, ...['none', 'topk:0.1'].map((compress) => ({ replicas: 3, compress, outer: 'avg' as const, outerLr: 2 }))];
  return [
    plain,
    ...[2, 3].flatMap((replicas) => COMPRESSIONS.map((compress) => ({ replicas, compress, outer: 'avg' as const, outerLr: 2 }))),
    { replicas: 3, compress: 'topk:0.1', outer: 'avg', outerLr: null },
    { replicas: 3, compress: 'topk:0.1', outer: 'nesterov', outerLr: null },
  ];
}

const label = (s: RowSpec) => (s.compress === null ? 'R=1 plain' : `R=${s.replicas} ${s.compress} ${s.outer}${s.outerLr !== null ? ` lr ${s.outerLr}` : ''}`);

export const federatedBenchmark: Benchmark<FederatedBench> = {
  name: 'federated',
  description: 'mnist-mlp federated rounds, the same total samples: R = 1, 2, 3 × compression none/int8/topk/powersgd: samples/s, bytes/step, accuracy; a compute/communication scaling model',
  async run({ quick, progress, workDir }) {
    const smoke = process.env.DCNR_BENCH_FEDERATED_SMOKE === '1';
    const totalSteps = smoke ? 300 : quick ? 600 : 3000;
    const batch = 64;
    const syncEvery = 50;
    const rows: FederatedRow[] = [];
    /** The plain run's and the model row's `dcnr train` JSON, unrounded. */
    let plainJson: TrainJson | undefined;
    let modelJson: TrainJson | undefined;
    for (const s of rowSpecs(smoke)) {
      const steps = totalSteps / s.replicas;
      if (s.compress !== null && steps % syncEvery !== 0) throw new Error(`federated bench: ${steps} steps per replica is not whole rounds of ${syncEvery}`);
      // Each run its own folder: `dcnr train --replicas` writes its shards beside the store.
      const dir = join(workDir, `federated-${label(s).replace(/[^a-z0-9.]+/gi, '-')}`);
      const args = ['train', '--model', 'mnist-mlp', '--steps', String(steps), '--batch', String(batch), '--pnodes', '0', '--store', join(dir, 'store')];
      if (s.compress !== null) {
        args.push('--replicas', String(s.replicas), '--sync-every', String(syncEvery), '--compress', s.compress, '--outer', s.outer!);
        if (s.outerLr !== null) args.push('--outer-lr', String(s.outerLr));
      }
      const j = await runDcnr<TrainJson>(args);
      const row: FederatedRow = {
        replicas: s.replicas,
        compress: s.compress,
        outer: s.outer,
        outerLr: s.outerLr,
        steps,
        rounds: j.rounds ?? null,
        samplesPerSec: sig(j.samplesPerSec),
        bytesSent: j.bytesSent ?? null,
        bytesPerStep: j.bytesPerStep !== undefined ? Math.round(j.bytesPerStep) : null,
        compressionRatio: j.compressionRatio !== undefined ? sig(j.compressionRatio) : null,
        testAccuracy: j.testAccuracy,
        evalLoss: j.evalLoss,
        replicasIdentical: j.replicasIdentical ?? null,
        durationMs: j.durationMs,
        paramsHash: j.paramsHash,
      };
      progress(
        `federated: ${label(s)}: ${row.samplesPerSec} samples/s, ${row.bytesPerStep ?? '—'} B/step, accuracy ${(row.testAccuracy * 100).toFixed(2)}%, ${(row.durationMs / 1000).toFixed(1)} s`,
      );
      rows.push(row);
      if (s.compress === null) plainJson = j;
      if (s.replicas === MODEL_ROW.replicas && s.compress === MODEL_ROW.compress && s.outer === MODEL_ROW.outer && s.outerLr === null) modelJson = j;
    }

    const m = modelJson!;
    const stepS = batch / plainJson!.samplesPerSec;
    const bytesPerRoundPerReplica = m.bytesSent! / m.rounds! / m.replicas!;
    // compressionRatio = steps · replicas · 2·P·4 / bytesSent (trainer/federated.ts), so P comes back out of the unrounded JSON.
    const parameters = Math.round((m.bytesSent! * m.compressionRatio!) / (m.steps * m.replicas! * 8));
    const dataParallelBytesPerStepPerReplica = 2 * parameters * 4;
    const predictions = predictScaling({ stepS, bytesPerRoundPerReplica, dataParallelBytesPerStepPerReplica, totalSteps, syncEvery, machines: [1, 3, 30] });
    return {
      model: 'mnist-mlp',
      batch,
      totalSteps,
      syncEvery,
      smoke,
      rows,
      scaling: {
        linkBytesPerSec: LINK_BYTES_PER_SEC,
        roundTripS: ROUND_TRIP_S,
        stepS: sig(stepS, 4),
        bytesPerRoundPerReplica: Math.round(bytesPerRoundPerReplica),
        dataParallelBytesPerStepPerReplica,
        parameters,
        predictions: predictions.map((p) => ({
          machines: p.machines,
          federatedS: sig(p.federatedS),
          federatedSpeedup: sig(p.federatedSpeedup),
          dataParallelS: sig(p.dataParallelS),
          dataParallelSpeedup: sig(p.dataParallelSpeedup),
        })),
      },
    };
  },
};
