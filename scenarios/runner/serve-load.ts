/**
 * Serving under faults (a scenario's `serve`): while the faulted run trains, `dcnr
 * serve`'s HTTP server (in this process, on the cluster's PNodes) answers a steady
 * load pinned to the run's first served version — `/v1/predict` of held-out rows for a
 * classifier, `/v1/generate` with seeds 0..15 for a language model. Every answer is
 * checked against the offline forward (or sampling) of that version — training goes on
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
import { generate } from '../../trainer/generate.js';

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
    // The requests and the answer each must get, computed offline from the pinned version.
    const tensors = await loadVersion(store, o.model, generation, step);
    const data = loadTrainingData(o.model);
    const kinds = 16;
    let request: (k: number) => { path: string; body: unknown };
    let judge: (k: number, body: Record<string, unknown>) => number; // |Δ| from the expected answer (Infinity: not it)
    if (data.text) {
      const maxTokens = 12;
      const expected = await Promise.all(
        Array.from({ length: kinds }, async (_, k) => (await generate(o.kernels, o.model, tensors, data.text!, { count: 1, temperature: 1, seed: k, maxTokens }))[0].text),
      );
      request = (k) => ({ path: '/v1/generate', body: { prompt: '', maxTokens, temperature: 1, seed: k } });
      judge = (k, body) => (body.text === expected[k] ? 0 : Infinity);
    } else {
      const inF = o.model.inputFeatures;
      const inputs = Array.from({ length: kinds }, (_, r) => Array.from(data.held.x.subarray(r * inF, (r + 1) * inF)));
      const expected = await forwardGraph(o.kernels, o.model, tensors, { shape: [kinds, inF], data: data.held.x.slice(0, kinds * inF) });
      const outF = expected.data.length / kinds;
      request = (k) => ({ path: '/v1/predict', body: { inputs: [inputs[k]] } });
      judge = (k, body) => {
        const out = (body.outputs as number[][] | undefined)?.[0];
        if (!out || out.length !== outF) return Infinity;
        let diff = 0;
        for (let j = 0; j < outF; j++) diff = Math.max(diff, Math.abs(out[j] - expected.data[k * outF + j]));
        return diff;
      };
    }
    const backend = await vnodeBackend({ nc: o.nc, store, model: o.model, generation, version: step });
    const server = await startServer({ backend, host: '127.0.0.1', port: 0, maxInFlight: 4, idleDispatch: true });
    version = backend.version().id;
    o.log(`serving ${dep} version ${version} on ${server.url}: ${o.concurrency} clients`);
    try {
      await Promise.all(
        Array.from({ length: o.concurrency }, async (_, c) => {
          for (let i = c; !stopping; i += o.concurrency) {
            const k = i % kinds;
            const { path, body } = request(k);
            const t0 = performance.now();
            const at = Date.now();
            let ok = false;
            try {
              const res = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
              const answer = (await res.json()) as Record<string, unknown>;
              if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${answer.error ?? '?'}`);
              ok = true;
              const diff = answer.paramsVersion === version ? judge(k, answer) : Infinity;
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
