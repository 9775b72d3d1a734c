/**
 * The serving backend that runs a forward pass through the deployment's VNodes
 * (docs/serving.md): for each VNode in index order, one inference request
 * (runtime/inference.ts) to whichever PNode owns it now, with the outputs of its
 * inputs; the gateway keeps every intermediate output, so a merge gets all of its
 * inputs and a hop that fails is simply sent again. A hop is retried — on no
 * responders (the owner died and the supervisor has not moved the VNode yet), on a
 * timeout (it died mid-request) or on "not hosted here" (it moved) — until the
 * request's deadline: a PNode SIGKILLed mid-request costs latency, not the request.
 * Retrying is safe because a hop changes nothing and gives the same bytes wherever it
 * runs (a pinned version, deterministic kernels).
 *
 * Versions: pinned (`--version STEP`) or `latest`, which follows the newest served
 * version (runtime/versions.ts: complete and committed), checked every `pollMs`.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeInferReply, encodeInferRequest, InferError, inferSubject } from '../runtime/inference.js';
import type { ResolvedModel } from '../runtime/model.js';
import type { StateStore } from '../runtime/state-store.js';
import type { Tensor } from '../runtime/tensor.js';
import { loadVersion, servedVersions } from '../runtime/versions.js';
import { paramsHash } from '../trainer/evaluate.js';
import type { ServeBackend, ServedVersion } from './backend.js';

export interface VNodeBackendOptions {
  nc: NatsConnection;
  store: StateStore;
  model: ResolvedModel;
  /** The deployment's generation (its record's KV revision). */
  generation: number;
  /** `latest` or a version's step. */
  version: 'latest' | number;
  /** One hop's reply is awaited this long before it is sent again. @default 1000 */
  hopTimeoutMs?: number;
  /** How often `latest` looks for a newer version. @default 1000 */
  pollMs?: number;
  /** How long to wait for a first served version (a run that has not reached one yet). @default 0: fail at once */
  waitForVersionMs?: number;
  log?: (line: string) => void;
}

/** Counters of the hops sent (for /metrics and the serving bench). */
export interface HopStats {
  hops: number;
  retries: number;
}

export async function vnodeBackend(o: VNodeBackendOptions): Promise<ServeBackend & { stats(): HopStats }> {
  const { nc, store, model, generation } = o;
  const dep = model.spec.name;
  const hopTimeoutMs = o.hopTimeoutMs ?? 1000;
  const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
  const stats: HopStats = { hops: 0, retries: 0 };

  /** The served version of `step` (its paramsHash from the stored bytes). */
  async function describe(step: number): Promise<ServedVersion> {
    return { id: String(step), paramsHash: paramsHash(model, await loadVersion(store, model, generation, step)) };
  }

  async function newest(): Promise<number | undefined> {
    return (await servedVersions(store, model, generation)).at(-1);
  }

  let current: ServedVersion;
  if (o.version === 'latest') {
    const until = Date.now() + (o.waitForVersionMs ?? 0);
    let step = await newest();
    if (step === undefined && o.waitForVersionMs) o.log?.(`${dep}: no served version yet; waiting up to ${((o.waitForVersionMs ?? 0) / 1000).toFixed(0)} s for the first (every ${model.spec.versionEvery ?? 100} steps)`);
    while (step === undefined && Date.now() < until) {
      await sleep(500);
      step = await newest();
    }
    if (step === undefined) throw new Error(`${dep} has no served version yet: one is kept every ${model.spec.versionEvery ?? 100} steps and at the end of training (docs/serving.md)`);
    current = await describe(step);
  } else {
    const served = await servedVersions(store, model, generation);
    if (!served.includes(o.version)) {
      throw new Error(`${dep} has no served version ${o.version}: ${served.length ? `served versions are ${served.join(', ')}` : 'none is served yet'} (a version is kept every ${model.spec.versionEvery ?? 100} steps, the newest 8 of them)`);
    }
    current = await describe(o.version);
  }

  // `latest` moves forward (only ever forward) when a newer version is complete and committed.
  let polling: Promise<void> | undefined;
  const timer =
    o.version === 'latest'
      ? setInterval(() => {
          polling ??= (async () => {
            const step = await newest();
            if (step !== undefined && step > Number(current.id)) {
              current = await describe(step);
              o.log?.(`${dep}: serving version ${current.id} (paramsHash ${current.paramsHash.slice(0, 12)}…)`);
            }
          })()
            .catch((err) => o.log?.(`${dep}: looking for a newer version failed: ${(err as Error).message}`))
            .finally(() => (polling = undefined));
        }, o.pollMs ?? 1000)
      : undefined;

  async function hop(index: number, xs: Tensor[], version: ServedVersion, deadline: number): Promise<Tensor> {
    const payload = encodeInferRequest({ generation, step: Number(version.id) }, xs);
    if (payload.byteLength > maxPayload) {
      throw new InferError(`${dep}.${index}: a ${payload.byteLength}-byte request is over the server's max_payload (${maxPayload}): send fewer rows`, true);
    }
    let wait = 20;
    let last: unknown;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${dep}.${index} did not answer before the deadline${last ? ` (last: ${(last as Error).message})` : ''}`);
      stats.hops++;
      try {
        const reply = await nc.request(inferSubject(dep, index), payload, { timeout: Math.min(left, hopTimeoutMs) });
        return decodeInferReply(reply.data);
      } catch (err) {
        // The owner's own refusal is final (the same request gets the same answer anywhere), but for a move.
        if (err instanceof InferError && (!err.fromHost || !/not hosted here/.test(err.message))) throw err;
        last = err;
        stats.retries++;
        await sleep(Math.min(wait, Math.max(0, deadline - Date.now())));
        wait = Math.min(wait * 2, 250);
      }
    }
  }

  return {
    model,
    version: () => current,
    async forward(input, version, deadline) {
      const outputs: Tensor[] = [];
      for (const v of model.vnodes) outputs[v.index] = await hop(v.index, v.inputs.map((from) => (from < 0 ? input : outputs[from])), version, deadline);
      return outputs[model.vnodes.length - 1];
    },
    async close() {
      clearInterval(timer);
      await polling;
    },
    stats: () => ({ ...stats }),
  };
}
