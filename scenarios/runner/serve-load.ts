/**
 * Serving under faults (a scenario's `serve`): while the faulted run trains, `dcnr
 * serve`'s HTTP server (in this process, on the cluster's PNodes) answers a steady
 * load of `/v1/predict` requests pinned to the run's first served version. Every
 * answer is checked against the offline forward of that version — training goes on
 * beside it, the answers must not move — and every request's latency is kept, so the
 * report gives p50/p99 before, during and after each PNode's death (docs/serving.md).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { openBuckets, readDeployment } from '../../runtime/cluster-state.js';
import type { Kernels } from '../../runtime/kernels/types.js';
import type { ResolvedModel } from '../../runtime/model.js';
import { stateAuthOf } from '../../runtime/security/verifier.js';
import { chunkBytesFor, StateStore } from '../../runtime/state-store.js';
import { loadVersion, servedVersions } from '../../runtime/versions.js';
import { startServer } from '../../serve/index.js';
import { vnodeBackend } from '../../serve/vnode-backend.js';
import { loadTrainingData } from '../../trainer/data.js';
import { forwardGraph } from '../../trainer/evaluate.js';

/** Answers within this of the offline forward count as right (micro-batching regroups rows: docs/serving.md). */
export const SERVE_TOLERANCE = 1e-5;

export interface PhaseStats {
  requests: number;
  failed: number;
  p50Ms: number | null;
  p99Ms: number | null;
}

export interface ServingReport {
  version: string | null;
  concurrency: number;
  requests: number;
  failed: number;
  /** Answers that differ from the pinned version's offline forward by more than SERVE_TOLERANCE. */
  wrong: number;
  maxAbsDiff: number;
  /** Requests ended before the first fault; in flight at any time from it to the last recovery; started after that. */
  phases: { before: PhaseStats; during: PhaseStats; after: PhaseStats };
  errors: string[];
}

/** Requests that pass `keep`: how many, how many failed, latency quantiles of the answered. */
function phaseOf(samples: Sample[], keep: (s: Sample) => boolean): PhaseStats {
  const inPhase = samples.filter(keep);
  const ms = inPhase.filter((s) => s.ok).map((s) => s.ms).sort((a, b) => a - b);
  const q = (p: number) => (ms.length ? Math.round(ms[Math.min(ms.length - 1, Math.floor(p * ms.length))] * 10) / 10 : null);
  return { requests: inPhase.length, failed: inPhase.length - ms.length, p50Ms: q(0.5), p99Ms: q(0.99) };
}

interface Sample {
  at: number;
  ms: number;
  ok: boolean;
}

export interface ServingLoad {
  /** Stop the load (after `tailMs` more) and measure; `faultAt` / `recoveredAt` split the phases. */
  stop(faultAt: number | undefined, recoveredAt: number | undefined): Promise<ServingReport>;
}

/**
 * Start serving `model`'s deployment once its generation is not `notGeneration` (the
 * baseline's, which the faulted run replaces) and it has a served version; then load it.
 */
export function startServingLoad(o: { nc: NatsConnection; model: ResolvedModel; kernels: Kernels; notGeneration: number; concurrency: number; tailMs?: number; log(line: string): void }): ServingLoad {
  const samples: Sample[] = [];
  const errors = new Set<string>();
  let stopping = false;
  let wrong = 0;
  let maxAbsDiff = 0;
  let version: string | null = null;

  const running = (async () => {
    const dep = o.model.spec.name;
    const buckets = await openBuckets(o.nc);
    const store = new StateStore(buckets.state, { chunkBytes: chunkBytesFor(o.nc), auth: await stateAuthOf(o.nc) });
    let generation = -1;
    let step: number | undefined;
    while (!stopping && step === undefined) {
      const record = await readDeployment(buckets.deployments, dep);
      if (record && record.generation !== o.notGeneration) {
        generation = record.generation;
        step = (await servedVersions(store, o.model, generation))[0];
      }
      if (step === undefined) await sleep(100);
    }
    if (step === undefined) return;
    const data = loadTrainingData(o.model);
    const inF = o.model.inputFeatures;
    const rows = 16;
    const inputs = Array.from({ length: rows }, (_, r) => Array.from(data.held.x.subarray(r * inF, (r + 1) * inF)));
    const expected = await forwardGraph(o.kernels, o.model, await loadVersion(store, o.model, generation, step), { shape: [rows, inF], data: data.held.x.slice(0, rows * inF) });
    const outF = expected.data.length / rows;
    const backend = await vnodeBackend({ nc: o.nc, store, model: o.model, generation, version: step });
    const server = await startServer({ backend, host: '127.0.0.1', port: 0, maxInFlight: 4 });
    version = backend.version().id;
    o.log(`serving ${dep} version ${version} on ${server.url}: ${o.concurrency} clients`);
    try {
      await Promise.all(
        Array.from({ length: o.concurrency }, async (_, c) => {
          for (let i = c; !stopping; i += o.concurrency) {
            const r = i % rows;
            const t0 = performance.now();
            const at = Date.now();
            let ok = false;
            try {
              const res = await fetch(`${server.url}/v1/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: [inputs[r]] }) });
              const body = (await res.json()) as { outputs?: number[][]; error?: string; paramsVersion?: string };
              if (res.status !== 200 || !body.outputs) throw new Error(`HTTP ${res.status}: ${body.error ?? '?'}`);
              ok = true;
              let diff = body.paramsVersion === version ? 0 : Infinity;
              for (let j = 0; j < outF; j++) diff = Math.max(diff, Math.abs(body.outputs[0][j] - expected.data[r * outF + j]));
              maxAbsDiff = Math.max(maxAbsDiff, diff);
              if (!(diff <= SERVE_TOLERANCE)) wrong++;
            } catch (err) {
              if (errors.size < 20) errors.add((err as Error).message);
            }
            samples.push({ at, ms: performance.now() - t0, ok });
          }
        }),
      );
    } finally {
      await server.close();
      await backend.close();
    }
  })().catch((err) => errors.add(`serving stopped: ${(err as Error).message}`));

  return {
    async stop(faultAt, recoveredAt) {
      await sleep(o.tailMs ?? 2000);
      stopping = true;
      await running;
      const split1 = faultAt ?? Infinity;
      const split2 = recoveredAt ?? split1;
      return {
        version,
        concurrency: o.concurrency,
        requests: samples.length,
        failed: samples.filter((s) => !s.ok).length,
        wrong,
        maxAbsDiff,
        phases: {
          before: phaseOf(samples, (s) => s.at + s.ms < split1),
          during: phaseOf(samples, (s) => s.at + s.ms >= split1 && s.at <= split2),
          after: phaseOf(samples, (s) => s.at > split2),
        },
        errors: [...errors],
      };
    },
  };
}
