/**
 * train: samples/s on mnist-mlp, batch 64 — one process (`--pnodes 0`) per kernel
 * backend, a 3-PNode cluster, and the same model in PyTorch — and where a step's
 * time goes (kernels, persistence, the rest: messaging) in an instrumented run.
 * Then the same three on the compute-bound wide-mlp at batch 256 (`wide`), whose
 * 2 MiB messages need the 8 MiB max_payload of the servers DCNR starts.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import '../actors/index.js';
import { loadMnist } from '../runtime/data/mnist.js';
import { createKernels } from '../runtime/kernels/index.js';
import type { Kernels } from '../runtime/kernels/types.js';
import { loadModelSpec, resolveModel } from '../runtime/model.js';
import { startNatsServer } from '../cluster/nats-server.js';
import { publishStats } from '../runtime/publisher.js';
import { LOCAL_DELIVERY_ENV } from '../runtime/local-delivery.js';
import { StateStore } from '../runtime/state-store.js';
import { durabilityWaits } from '../runtime/vnode-actor.js';
import { train } from '../trainer/train.js';
import { connect } from '@nats-io/transport-node';
import { runDcnr } from './process.js';
import { sig } from './stats.js';
import { runTorch, torchInfo } from './torch.js';
import type { Benchmark, BenchContext } from './types.js';

interface TrainJson {
  samplesPerSec: number;
  kernelMode: string;
  testAccuracy: number;
  paramsHash: string;
  checkpointEvery: number;
  checkpointMs: number;
  persistedBytesPerStep: number | null;
}

/** wide-mlp (784-2048-2048-10) at batch 256: the same runs as mnist-mlp's, default backend only. */
export interface WideTrainBench {
  steps: number;
  batch: number;
  singleProcessSps: number;
  clusterSps: number;
  torchSps: number | null;
  /** Of the one-process run. */
  testAccuracy: number;
  /** The one-process and the 3-PNode runs ended with the same paramsHash (invariant 3). */
  identical: boolean;
}

export interface TrainBench {
  steps: number;
  batch: number;
  singleProcessSps: number;
  clusterSps: number;
  torchSps: number | null;
  /** One-process samples/s per kernel backend. */
  perBackend: Array<{ kernelMode: string; sps: number; testAccuracy: number }>;
  /**
   * Where one step's time goes, one process, default backend: time inside kernels, inside
   * state commits (KV blob puts + CAS) and inside JetStream publishes (outputs, awaiting the
   * stream's ack). Busy times are summed over the VNodes, which run concurrently (pipelined),
   * so their sum can exceed the wall time per step.
   */
  breakdown: {
    kernelMode: string;
    wallMsPerStep: number;
    kernelMsPerStep: number;
    persistMsPerStep: number;
    publishMsPerStep: number;
    /** Of the above, what the VNodes waited for (checkpoint backpressure, the send bound): the share of the step durability costs. */
    durabilityWaitMsPerStep: number;
  };
  /**
   * One process at the default checkpoint interval (the `single` run) and at
   * checkpointEvery 1 (a commit per message, the old mode): samples/s and KV bytes
   * written per step; `identical`: both ended with the same paramsHash.
   */
  checkpoints: {
    defaultEvery: number;
    defaultMs: number;
    defaultSps: number;
    defaultBytesPerStep: number | null;
    every1Sps: number;
    every1BytesPerStep: number | null;
    identical: boolean;
  };
  /** 3 PNodes at pipeline depth 0, 2 (the default: the `cluster` run) and 4: samples/s and test accuracy. */
  depths: Array<{ depth: number; sps: number; testAccuracy: number }>;
  /**
   * What security costs: the one-process and 3-PNode runs above have auth on (every
   * message and state commit signed and verified, the default); the same with `--no-auth`.
   * `identical`: all four ended with the same paramsHash.
   */
  auth: { singleSps: number; singleNoAuthSps: number; clusterSps: number; clusterNoAuthSps: number; identical: boolean };
  /** One process, local edges (default) against JetStream copies of every VNode message (`DCNR_LOCAL_DELIVERY=copy`). */
  localEdges: { sps: number; copySps: number; bytesPerStep: number | null; copyBytesPerStep: number | null; wideSps: number; wideCopySps: number; identical: boolean };
  wide: WideTrainBench;
}

/** Kernels whose every call is timed (for the breakdown). */
function timedKernels(k: Kernels, total: { ms: number }): Kernels {
  return new Proxy(k, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop, target);
      if (typeof v !== 'function' || prop === 'dispose') return typeof v === 'function' ? v.bind(target) : v;
      return async (...args: unknown[]) => {
        const t = performance.now();
        try {
          return await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        } finally {
          total.ms += performance.now() - t;
        }
      };
    },
  });
}

/** Wraps `obj[method]` to add its time to `total`; returns the undo. Measurement only. */
function timeMethod<T extends object>(obj: T, method: keyof T & string, total: { ms: number }): () => void {
  const original = obj[method] as unknown as (...a: unknown[]) => Promise<unknown>;
  (obj as Record<string, unknown>)[method] = async function (this: unknown, ...args: unknown[]) {
    const t = performance.now();
    try {
      return await original.apply(this, args);
    } finally {
      total.ms += performance.now() - t;
    }
  };
  return () => void ((obj as Record<string, unknown>)[method] = original);
}

/** Train in this process with timed kernels, state commits and JetStream publishes. */
async function breakdown(ctx: BenchContext, steps: number, batch: number): Promise<TrainBench['breakdown']> {
  const server = await startNatsServer({ storeDir: join(ctx.workDir, 'breakdown') });
  const nc = await connect({ servers: server.url, noAsyncTraces: true });
  const kernelTime = { ms: 0 };
  const persistTime = { ms: 0 };
  // Every state commit goes through StateStore.write; every message's publish is timed to its ack by runtime/publisher.ts.
  const undo = [timeMethod(StateStore.prototype, 'write', persistTime)];
  const published = { ...publishStats };
  try {
    const base = await createKernels();
    const kernels = timedKernels(base, kernelTime);
    const model = resolveModel(loadModelSpec('mnist-mlp'));
    const waited = { ...durabilityWaits };
    const t = performance.now();
    await train({ nc, model, steps, batch, seed: 1, kernels, hostLocally: true });
    const wall = performance.now() - t;
    return {
      kernelMode: base.mode,
      wallMsPerStep: sig(wall / steps),
      kernelMsPerStep: sig(kernelTime.ms / steps),
      persistMsPerStep: sig(persistTime.ms / steps),
      publishMsPerStep: sig((publishStats.inFlightMs - published.inFlightMs) / steps),
      durabilityWaitMsPerStep: sig((durabilityWaits.checkpointMs - waited.checkpointMs + durabilityWaits.sendsMs - waited.sendsMs) / steps),
    };
  } finally {
    for (const u of undo) u();
    await nc.close();
    await server.stop();
  }
}

/** The training digits as raw files for torch_baseline.py (written once per run). */
function torchData(ctx: BenchContext): { x: string; y: string; n: number } {
  const data = loadMnist();
  const x = join(ctx.workDir, 'mnist-train.f32');
  const y = join(ctx.workDir, 'mnist-train.u8');
  writeFileSync(x, new Uint8Array(data.train.x.buffer, data.train.x.byteOffset, data.train.x.byteLength));
  writeFileSync(y, data.train.y);
  return { x, y, n: data.train.n };
}

/**
 * wide-mlp: one process, 3 PNodes, PyTorch, batch 256. Steps measured on the 2-core
 * machine (old per-message persistence path, ≈1.6 steps/s one process, ≈1.3 on 3
 * PNodes, plus ≈5–8 s of start-up each): 100 steps ≈ 2.5 min for the three runs,
 * 20 steps (--quick) ≈ 45 s.
 */
async function wideRuns(ctx: BenchContext, data: { x: string; y: string; n: number } | null): Promise<WideTrainBench & { copy: TrainJson; singleHash: string }> {
  const steps = ctx.quick ? 20 : 100;
  const batch = 256;
  const common = ['train', '--model', 'wide-mlp', '--steps', String(steps), '--batch', String(batch), '--seed', '1'];
  ctx.progress(`train: wide-mlp batch ${batch}, one process, ${steps} steps …`);
  const single = await runDcnr<TrainJson>([...common, '--pnodes', '0', '--store', join(ctx.workDir, 'wide-single')]);
  ctx.progress(`train: wide-mlp one process ${sig(single.samplesPerSec)} samples/s (${single.kernelMode})`);
  ctx.progress(`train: wide-mlp one process, DCNR_LOCAL_DELIVERY=copy …`);
  const copy = await runDcnr<TrainJson>([...common, '--pnodes', '0', '--store', join(ctx.workDir, 'wide-copy')], { [LOCAL_DELIVERY_ENV]: 'copy' });
  ctx.progress(`train: wide-mlp one process with JetStream copies ${sig(copy.samplesPerSec)} samples/s`);
  ctx.progress(`train: wide-mlp 3 PNodes …`);
  const cluster = await runDcnr<TrainJson>([...common, '--pnodes', '3', '--store', join(ctx.workDir, 'wide-cluster')]);
  ctx.progress(`train: wide-mlp 3 PNodes ${sig(cluster.samplesPerSec)} samples/s`);
  let torchSps: number | null = null;
  if (data) {
    torchSps = sig(runTorch<{ sps: number }>(['train', data.x, data.y, data.n, steps, batch, 1, '2048,2048']).sps);
    ctx.progress(`train: wide-mlp PyTorch ${torchSps} samples/s`);
  }
  return {
    steps,
    batch,
    singleProcessSps: sig(single.samplesPerSec),
    clusterSps: sig(cluster.samplesPerSec),
    torchSps,
    testAccuracy: single.testAccuracy,
    identical: single.paramsHash === cluster.paramsHash,
    copy,
    singleHash: single.paramsHash,
  };
}

export const trainBenchmark: Benchmark<TrainBench> = {
  name: 'train',
  description: 'samples/s on mnist-mlp batch 64 (one process per backend, 3 PNodes, PyTorch) and wide-mlp batch 256 (one process, 3 PNodes, PyTorch)',
  async run(ctx) {
    const steps = ctx.quick ? 200 : 600;
    const batch = 64;
    const common = ['train', '--model', 'mnist-mlp', '--steps', String(steps), '--batch', String(batch), '--seed', '1'];

    // One process on the default backend (what a user gets), then every other backend.
    ctx.progress(`train: one process, default backend, ${steps} steps …`);
    const single = await runDcnr<TrainJson>([...common, '--pnodes', '0', '--store', join(ctx.workDir, 'train-single')]);
    ctx.progress(`train: one process ${sig(single.samplesPerSec)} samples/s (${single.kernelMode})`);
    const perBackend: TrainBench['perBackend'] = [{ kernelMode: single.kernelMode, sps: sig(single.samplesPerSec), testAccuracy: single.testAccuracy }];
    for (const mode of ['blas', 'gpu.js:webasm']) {
      if (single.kernelMode.startsWith(mode)) continue;
      ctx.progress(`train: one process, DCNR_KERNEL_MODE=${mode} …`);
      try {
        const r = await runDcnr<TrainJson>([...common, '--pnodes', '0', '--store', join(ctx.workDir, `train-${mode}`)], { DCNR_KERNEL_MODE: mode });
        perBackend.push({ kernelMode: r.kernelMode, sps: sig(r.samplesPerSec), testAccuracy: r.testAccuracy });
        ctx.progress(`train: ${r.kernelMode} ${sig(r.samplesPerSec)} samples/s`);
      } catch (err) {
        ctx.progress(`train: ${mode} not measured: ${(err as Error).message}`);
      }
    }
    ctx.progress(`train: one process, DCNR_LOCAL_DELIVERY=copy (every VNode message also through JetStream) …`);
    const copy = await runDcnr<TrainJson>([...common, '--pnodes', '0', '--store', join(ctx.workDir, 'train-copy')], { [LOCAL_DELIVERY_ENV]: 'copy' });
    ctx.progress(`train: one process with JetStream copies ${sig(copy.samplesPerSec)} samples/s`);
    ctx.progress(`train: 3 PNodes …`);
    const cluster = await runDcnr<TrainJson>([...common, '--pnodes', '3', '--store', join(ctx.workDir, 'train-cluster')]);
    ctx.progress(`train: 3 PNodes ${sig(cluster.samplesPerSec)} samples/s (${cluster.kernelMode})`);

    ctx.progress(`train: one process, checkpointEvery 1 (a commit per message) …`);
    const every1 = await runDcnr<TrainJson>([...common, '--pnodes', '0', '--checkpoint-every', '1', '--store', join(ctx.workDir, 'train-every1')]);
    ctx.progress(`train: checkpointEvery 1: ${sig(every1.samplesPerSec)} samples/s, ${every1.persistedBytesPerStep} B/step (default ${single.checkpointEvery}: ${single.persistedBytesPerStep} B/step)`);
    const checkpoints: TrainBench['checkpoints'] = {
      defaultEvery: single.checkpointEvery,
      defaultMs: single.checkpointMs,
      defaultSps: sig(single.samplesPerSec),
      defaultBytesPerStep: single.persistedBytesPerStep,
      every1Sps: sig(every1.samplesPerSec),
      every1BytesPerStep: every1.persistedBytesPerStep,
      identical: every1.paramsHash === single.paramsHash,
    };
    // Two rounds over the depths, interleaved, the faster run of each kept: on a shared
    // machine a neighbour slows one run down, never speeds one up, and runs minutes
    // apart (the default depth's first run is `cluster`, above) drift apart.
    const best = new Map<number, TrainJson>([[2, cluster]]);
    for (const round of [1, 2]) {
      for (const depth of [0, 2, 4]) {
        if (round === 1 && depth === 2) continue;
        ctx.progress(`train: 3 PNodes, pipeline depth ${depth} (round ${round}) …`);
        const r = await runDcnr<TrainJson>([...common, '--pnodes', '3', '--depth', String(depth), '--store', join(ctx.workDir, `train-depth${depth}`)]);
        if (!best.has(depth) || r.samplesPerSec > best.get(depth)!.samplesPerSec) best.set(depth, r);
      }
    }
    const depths: TrainBench['depths'] = [0, 2, 4].map((depth) => {
      const r = best.get(depth)!;
      ctx.progress(`train: 3 PNodes depth ${depth}: ${sig(r.samplesPerSec)} samples/s (the faster of 2), test accuracy ${(r.testAccuracy * 100).toFixed(2)}%`);
      return { depth, sps: sig(r.samplesPerSec), testAccuracy: r.testAccuracy };
    });

    ctx.progress(`train: one process and 3 PNodes with --no-auth (the cost of signing) …`);
    const singleNoAuth = await runDcnr<TrainJson>([...common, '--pnodes', '0', '--no-auth', '--store', join(ctx.workDir, 'train-noauth-single')]);
    const clusterNoAuth = await runDcnr<TrainJson>([...common, '--pnodes', '3', '--no-auth', '--store', join(ctx.workDir, 'train-noauth-cluster')]);
    const auth: TrainBench['auth'] = {
      singleSps: sig(single.samplesPerSec),
      singleNoAuthSps: sig(singleNoAuth.samplesPerSec),
      clusterSps: sig(cluster.samplesPerSec),
      clusterNoAuthSps: sig(clusterNoAuth.samplesPerSec),
      identical: [singleNoAuth, cluster, clusterNoAuth].every((r) => r.paramsHash === single.paramsHash),
    };
    ctx.progress(`train: auth on/off: one process ${auth.singleSps}/${auth.singleNoAuthSps}, 3 PNodes ${auth.clusterSps}/${auth.clusterNoAuthSps} samples/s`);

    let torchSps: number | null = null;
    const data = torchInfo() ? torchData(ctx) : null;
    if (data) {
      const r = runTorch<{ sps: number }>(['train', data.x, data.y, data.n, steps, batch, 1]);
      torchSps = sig(r.sps);
      ctx.progress(`train: PyTorch ${torchSps} samples/s`);
    }
    ctx.progress(`train: step-time breakdown (one process, instrumented, ${Math.min(steps, 300)} steps) …`);
    const split = await breakdown(ctx, Math.min(steps, 300), batch);
    const { copy: wideCopy, singleHash: wideHash, ...wide } = await wideRuns(ctx, data);
    const localEdges: TrainBench['localEdges'] = {
      sps: sig(single.samplesPerSec),
      copySps: sig(copy.samplesPerSec),
      bytesPerStep: single.persistedBytesPerStep,
      copyBytesPerStep: copy.persistedBytesPerStep,
      wideSps: wide.singleProcessSps,
      wideCopySps: sig(wideCopy.samplesPerSec),
      identical: copy.paramsHash === single.paramsHash && wideCopy.paramsHash === wideHash,
    };
    return {
      localEdges,
      steps,
      batch,
      singleProcessSps: sig(single.samplesPerSec),
      clusterSps: sig(cluster.samplesPerSec),
      torchSps,
      perBackend,
      breakdown: split,
      checkpoints,
      depths,
      auth,
      wide,
    };
  },
};
