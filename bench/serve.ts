/**
 * Serving (issue #15): `dcnr serve` on a trained mnist-mlp, as a user runs it — a child
 * process answering HTTP, each request's forward pass one NATS request per VNode to the
 * responders of its store — loaded by this process with autocannon (serve/load.ts) at
 * concurrency 1, 8 and 64, as issue #15 asks. Beside it, in the same run, the parts a
 * request is made of:
 *   - HTTP: the round trip of the same POST body to a handler that only reads it (a
 *     child process of its own, as the server is), by the same load generator;
 *   - hops: a NATS request/reply of one hop's bytes (a row of 784 floats) between two
 *     connections, times the model's VNodes;
 *   - kernels: the model's forward of one row, in this process.
 * Issue #15's bars: p50 at concurrency 1 ≤ 1.5× the sum of those parts, and ≥ 5× the
 * requests/s at concurrency 64 of concurrency 1. PyTorch's forward of the same model
 * (no HTTP, no network) is the single-machine reference.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { connect } from '@nats-io/transport-node';
import '../actors/index.js';
import { startNatsServer } from '../cluster/nats-server.js';
import { createKernels } from '../runtime/kernels/index.js';
import { encodeInferRequest } from '../runtime/inference.js';
import { loadModelSpec, resolveModel } from '../runtime/model.js';
import { createRng } from '../runtime/rng.js';
import { LOAD_GENERATOR, runLoad, type LoadResult } from '../serve/load.js';
import { loadTrainingData } from '../trainer/data.js';
import { forwardGraph } from '../trainer/evaluate.js';
import { DCNR_BIN, runDcnr } from './process.js';
import { sig, summarize } from './stats.js';
import { runTorch, torchInfo } from './torch.js';
import type { Benchmark } from './types.js';

/** One closed-loop load at one concurrency: p50/p99 of the answered requests. */
export interface ServeLoad {
  requests: number;
  failed: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

export interface ServeBench {
  model: 'mnist-mlp';
  vnodes: number;
  /** The parts of one request at concurrency 1, µs (p50s). */
  parts: { httpUs: number; natsRequestUs: number; hops: number; kernelsUs: number; sumMs: number };
  /** What loaded the server, e.g. `autocannon 9.0.0`. */
  loadGenerator: string;
  c1: ServeLoad;
  c8: ServeLoad;
  c64: ServeLoad;
  /** c1 p50 / the sum of its parts (bar ≤ 1.5). */
  p50OverParts: number;
  /** c64 requests/s / c1 requests/s (bar ≥ 5). */
  batchingGain: number;
  torch: { p50Ms: number; rowsPerSec: number; batch: number } | null;
}

/** Spawn a child that prints its URL as the first stdout line; resolve with both. */
function startChild(args: string[], what: string): Promise<{ url: string; child: ChildProcess }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (c) => (err = (err + c).slice(-4000)));
    createInterface({ input: child.stdout! }).once('line', (line) => resolve({ url: line.trim(), child }));
    child.once('exit', (code) => reject(new Error(`${what} exited ${code} before it listened: ${err.trim().split('\n').slice(-3).join(' | ')}`)));
  });
}

/** An HTTP server whose handler reads the body and answers `{}`: the HTTP part of a request. */
const EMPTY_HANDLER = `require('http').createServer((q, s) => { q.resume(); q.on('end', () => { s.setHeader('content-type', 'application/json'); s.end('{}'); }); }).listen(0, '127.0.0.1', function () { console.log('http://127.0.0.1:' + this.address().port); });`;

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  await exited;
}

/** p50 of a NATS request/reply carrying `payload` both ways, between two connections, µs. */
async function natsRequestUs(workDir: string, payload: Uint8Array, n: number): Promise<number> {
  const server = await startNatsServer({ storeDir: join(workDir, 'serve-nats') });
  const a = await connect({ servers: server.url, noAsyncTraces: true });
  const b = await connect({ servers: server.url, noAsyncTraces: true });
  try {
    b.subscribe('bench.req', { callback: (_e, m) => void m.respond(payload) });
    await b.flush();
    const samples: number[] = [];
    for (let i = 0; i < n + 20; i++) {
      const t = performance.now();
      await a.request('bench.req', payload, { timeout: 5000 });
      if (i >= 20) samples.push((performance.now() - t) * 1000);
    }
    return summarize(samples).p50;
  } finally {
    await a.close();
    await b.close();
    await server.stop();
  }
}

export const serveBenchmark: Benchmark<ServeBench> = {
  name: 'serve',
  description: 'dcnr serve (mnist-mlp through its VNodes) at concurrency 1, 8 and 64 (autocannon), beside the parts of a request and PyTorch\'s forward',
  async run(ctx) {
    const store = join(ctx.workDir, 'serve-store');
    const steps = ctx.quick ? 60 : 200;
    ctx.progress(`serve: training mnist-mlp ${steps} steps to serve …`);
    await runDcnr(['train', '--model', 'mnist-mlp', '--steps', String(steps), '--batch', '64', '--pnodes', '0', '--store', store]);
    const model = resolveModel(loadModelSpec('mnist-mlp'));
    const data = loadTrainingData(model);
    const inF = model.inputFeatures;
    const rows = 64;
    const bodies = Array.from({ length: rows }, (_, r) => JSON.stringify({ inputs: [Array.from(data.held.x.subarray(r * inF, (r + 1) * inF))] }));
    const body = (i: number) => JSON.parse(bodies[i % rows]);
    const n1 = ctx.quick ? 150 : 500;
    const n8 = ctx.quick ? 500 : 2000;
    const n64 = ctx.quick ? 1500 : 5000;

    // The parts, measured first (nothing else running).
    const empty = await startChild(['-e', EMPTY_HANDLER], 'the empty HTTP handler');
    let httpUs: number;
    try {
      await runLoad({ url: empty.url, path: '/v1/predict', body, concurrency: 1, requests: 50 });
      httpUs = (await runLoad({ url: empty.url, path: '/v1/predict', body, concurrency: 1, requests: n1 })).p50Ms * 1000;
    } finally {
      await stopChild(empty.child);
    }
    const hopBytes = encodeInferRequest({ generation: 1, step: 1 }, [{ shape: [1, inF], data: data.held.x.slice(0, inF) }]);
    const natsUs = await natsRequestUs(ctx.workDir, hopBytes, n1);
    const kernels = await createKernels();
    // Fresh weights of the model's shapes: a forward's time does not depend on their values.
    const tensors = model.vnodes.map((v) =>
      v.def.role === 'loss' || !v.def.init ? {} : v.def.init({ config: v.config, inFeatures: v.inFeatures, outFeatures: v.outFeatures, rng: createRng(`bench/serve/${v.index}`) }),
    );
    const kernelSamples: number[] = [];
    const one = { shape: [1, inF], data: data.held.x.slice(0, inF) };
    for (let i = 0; i < n1 + 20; i++) {
      const t = performance.now();
      await forwardGraph(kernels, model, tensors, one);
      if (i >= 20) kernelSamples.push((performance.now() - t) * 1000);
    }
    const kernelsUs = summarize(kernelSamples).p50;
    const hops = model.vnodes.length;
    const sumMs = (httpUs + hops * natsUs + kernelsUs) / 1000;
    ctx.progress(`serve: parts: HTTP ${sig(httpUs)} µs, NATS request ${sig(natsUs)} µs × ${hops} hops, kernels ${sig(kernelsUs)} µs = ${sig(sumMs)} ms`);

    // dcnr serve itself, loaded from here.
    const served = await startChild([DCNR_BIN, 'serve', '--deployment', 'mnist-mlp', '--store', store, '--port', '0'], 'dcnr serve');
    const loads = new Map<number, LoadResult>();
    try {
      await runLoad({ url: served.url, path: '/v1/predict', body, concurrency: 4, requests: 100 }); // warm-up
      for (const [concurrency, requests] of [[1, n1], [8, n8], [64, n64]]) {
        const r = await runLoad({ url: served.url, path: '/v1/predict', body, concurrency, requests });
        loads.set(concurrency, r);
        ctx.progress(`serve: concurrency ${concurrency}: p50 ${sig(r.p50Ms)} ms, p99 ${sig(r.p99Ms)} ms, ${sig(r.rps)} requests/s${r.failed ? `, ${r.failed} failed` : ''}`);
      }
    } finally {
      await stopChild(served.child);
    }
    const c1 = loads.get(1)!;
    const c64 = loads.get(64)!;
    const pick = (r: LoadResult): ServeLoad => ({ requests: r.requests, failed: r.failed, rps: sig(r.rps), p50Ms: sig(r.p50Ms), p99Ms: sig(r.p99Ms) });

    let torch: ServeBench['torch'] = null;
    if (torchInfo()) {
      const t = runTorch<{ p50Ms: number; rowsPerSec: number; batch: number }>(['infer', n1, 64]);
      torch = { p50Ms: sig(t.p50Ms), rowsPerSec: sig(t.rowsPerSec), batch: t.batch };
    }
    return {
      model: 'mnist-mlp',
      vnodes: hops,
      parts: { httpUs: sig(httpUs), natsRequestUs: sig(natsUs), hops, kernelsUs: sig(kernelsUs), sumMs: sig(sumMs) },
      loadGenerator: LOAD_GENERATOR,
      c1: pick(c1),
      c8: pick(loads.get(8)!),
      c64: pick(c64),
      p50OverParts: sig(c1.p50Ms / sumMs),
      batchingGain: sig(c64.rps / c1.rps),
      torch,
    };
  },
};
