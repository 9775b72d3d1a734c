/**
 * The `dcnr bench` JSON contract: the schema accepts a complete result and names what
 * is missing from an incomplete one; the CLI prints tables then the JSON as its last
 * line and saves it — checked on a real (small) run of the hop benchmark.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../test/helpers/nats.js';
import { BenchResult, checkBenchResult, formatTables } from './result.js';

const bin = fileURLToPath(new URL('../bin/dcnr.js', import.meta.url));

/** A complete result with plausible values (shape only; no benchmark ran). */
function complete(): BenchResult {
  const p = { p50Ms: 1, maxMs: 2 };
  return {
    version: 1,
    quick: true,
    startedAt: new Date(0).toISOString(),
    durationMs: 1,
    machine: { cpu: 'cpu', cores: 2, memoryGiB: 24, node: '20', os: 'linux' },
    kernels: [
      { op: 'matmul', size: 512, shape: [512, 512, 512], mode: 'blas:openblas-haswell-2t', gflops: 200, runs: 3 },
      { op: 'matmul', size: 512, shape: [512, 512, 512], mode: 'js', gflops: 1.5, runs: 3 },
      { op: 'dense-fwd-bwd', size: 64, shape: [64, 784, 128], mode: 'js', gflops: 1.4, runs: 3 },
    ],
    kernelsSkipped: [{ mode: 'gpu.js:headlessgl', reason: 'no GL' }],
    torch: null,
    hop: { natsOneWayUs: 90, vnodeHopUs: 700, sizes: [{ bytes: 1024, n: 10, natsOneWayUs: { p50: 90, p99: 200 }, vnodeHopUs: { p50: 700, p99: 900 } }] },
    train: {
      steps: 10,
      batch: 64,
      singleProcessSps: 2500,
      clusterSps: 1700,
      torchSps: null,
      perBackend: [{ kernelMode: 'js', sps: 100, testAccuracy: 0.5 }],
      breakdown: { kernelMode: 'js', wallMsPerStep: 30, kernelMsPerStep: 3, persistMsPerStep: 40, publishMsPerStep: 10 },
      wide: { steps: 100, batch: 256, singleProcessSps: 400, clusterSps: 340, torchSps: 1900, testAccuracy: 0.8, identical: true },
    },
    recovery: { n: 2, p50Ms: 1, maxMs: 2, detect: p, resume: p, killToDead: p, detectTimeoutMs: 1000, paramsHash: 'x' },
    memory: { parameters: 5e7, pnodes: [{ id: 'pnode-1', vnodes: ['m.0'], peakRssMiB: 500 }], maxPNodePeakRssMiB: 500, singleProcessPeakRssMiB: 900, steps: 2, batch: 8 },
    scale: {
      vnodes: 1000,
      pnodes: 2,
      activation: { p50Ms: 1, p99Ms: 2, workP50Ms: 1, workP99Ms: 2, allActiveMs: 3 },
      bytesPerIdleVNode: 1000,
      bytesPerPassivatedVNode: 900,
      passivation: { afterIdleMs: 4000, passivated: 1000, allPassivatedMs: 10 },
      reactivation: { woken: 5, firstWakeMs: 40, workP50Ms: 4, workP99Ms: 5 },
    },
  };
}

test('a complete result passes the schema', () => {
  assert.equal(checkBenchResult(complete()), complete());
});

test('an incomplete result is refused with every missing field named', () => {
  const r = complete() as Record<string, unknown>;
  delete r.recovery;
  (r.train as Record<string, unknown>).clusterSps = Number.NaN;
  try {
    checkBenchResult(r);
    assert.unreachable('accepted an incomplete result');
  } catch (err) {
    const msg = (err as Error).message;
    assert.match(msg, /recovery/);
    assert.match(msg, /train\.clusterSps/);
  }
});

test('torchSps is a number or null, never missing', () => {
  const r = complete() as unknown as { train: Record<string, unknown> };
  delete r.train.torchSps;
  assert.throws(() => checkBenchResult(r), /train\.torchSps/);
});

test('the tables show every backend with its ratio to BLAS, and a torch-less run says so', () => {
  const md = formatTables(complete());
  assert.match(md, /\| blas:openblas-haswell-2t \| 200 \| — \| 1\.0× \|/);
  assert.match(md, /\| js \| 1\.5 \| 1\.4 \| 0\.01× \|/);
  assert.match(md, /gpu\.js:headlessgl \| not run: no GL/);
  assert.match(md, /PyTorch \| — \(no torch\)/);
  assert.match(md, /\| 3 PNodes \| 1700 \| 0\.68× \|/);
});

test('the training table has the wide-mlp runs beside mnist-mlp, each against its own one-process run', () => {
  const md = formatTables(complete());
  assert.match(md, /\*\*Training\*\* \(samples\/s; mnist-mlp, batch 64, 10 steps; wide-mlp, batch 256, 100 steps;/);
  assert.match(md, /\| mnist-mlp, batch 64 \| 3 PNodes \| 1700 \| 0\.68× \|/);
  assert.match(md, /\| wide-mlp, batch 256 \| one process \(default\) \| 400 \| 1\.0× \|/);
  assert.match(md, /\| wide-mlp, batch 256 \| 3 PNodes \| 340 \| 0\.85× \|/);
  assert.match(md, /\| wide-mlp, batch 256 \| PyTorch \| 1900 \| 4\.8× \|/);
  assert.match(md, /wide-mlp test accuracy 80\.0% after 100 steps; one process and 3 PNodes ended with identical parameters/);
  // A result saved before wide-mlp existed still prints.
  const old = complete() as unknown as { train: Record<string, unknown> };
  delete old.train.wide;
  assert.not.match(formatTables(old as unknown as BenchResult), /wide-mlp/);
  assert.throws(() => checkBenchResult(old), /train\.wide/);
});

test('the federated table: a row per run against the plain run, and the scaling model', () => {
  const r = complete();
  r.federated = {
    model: 'mnist-mlp',
    batch: 64,
    totalSteps: 1800,
    syncEvery: 50,
    smoke: false,
    rows: [
      { replicas: 1, compress: null, outer: null, outerLr: null, steps: 1800, rounds: null, samplesPerSec: 3000, bytesSent: null, bytesPerStep: null, compressionRatio: null, testAccuracy: 0.95, evalLoss: 0.2, replicasIdentical: null, durationMs: 40000, paramsHash: 'a' },
      { replicas: 3, compress: 'topk:0.1', outer: 'avg', outerLr: 2, steps: 600, rounds: 12, samplesPerSec: 1500, bytesSent: 6e6, bytesPerStep: 10000, compressionRatio: 250, testAccuracy: 0.945, evalLoss: 0.21, replicasIdentical: true, durationMs: 80000, paramsHash: 'b' },
    ],
    scaling: {
      linkBytesPerSec: 12.5e6,
      roundTripS: 0.05,
      stepS: 0.0213,
      bytesPerRoundPerReplica: 175_000,
      dataParallelBytesPerStepPerReplica: 875_088,
      parameters: 109_386,
      predictions: [{ machines: 3, federatedS: 13.6, federatedSpeedup: 2.8, dataParallelS: 168, dataParallelSpeedup: 0.23 }],
    },
  };
  assert.equal(checkBenchResult(r), r);
  const md = formatTables(r);
  assert.match(md, /\*\*Federated rounds\*\* \(mnist-mlp, batch 64, the same 1800 × 64 samples in every row/);
  assert.match(md, /\| 1 \| — \(plain run\) \| — \| 3000 \| 1\.0× \| — \| — \| 95\.00% \| \+0\.00 pt \| 0\.2000 \| — \| 40\.0 \|/);
  assert.match(md, /\| 3 \| topk:0\.1 \| avg lr 2 \| 1500 \| 0\.50× \| 10000 \| 250× \| 94\.50% \| -0\.50 pt \| 0\.2100 \| yes \| 80\.0 \|/);
  assert.match(md, /100 Mbit\/s link/);
  assert.match(md, /\| 3 \| 13\.6 \| 2\.8× \| 168 \| 0\.23× \|/);
});

test('the serving table: concurrency 1, 8 and 64 and the load generator; a result saved before c8 still prints', () => {
  const r = complete();
  const load = (rps: number, p50Ms: number, p99Ms: number) => ({ requests: 500, failed: 0, rps, p50Ms, p99Ms });
  r.serve = {
    model: 'mnist-mlp',
    vnodes: 6,
    parts: { httpUs: 1400, natsRequestUs: 600, hops: 6, kernelsUs: 100, sumMs: 5.1 },
    loadGenerator: 'autocannon 9.0.0',
    c1: load(180, 4.6, 13.8),
    c8: load(700, 9.5, 28.5),
    c64: load(1170, 52, 156),
    p50OverParts: 0.9,
    batchingGain: 6.5,
    torch: null,
  };
  assert.equal(checkBenchResult(r), r);
  const md = formatTables(r);
  assert.match(md, /loaded over HTTP from another process with autocannon 9\.0\.0;/);
  assert.match(md, /\| DCNR, concurrency 1 \| 4\.6 \| 13\.8 \| 180 \| 180 \|\n\| DCNR, concurrency 8 \| 9\.5 \| 28\.5 \| 700 \| 700 \|\n\| DCNR, concurrency 64 \| 52 \| 156 \| 1170 \(6\.5× concurrency 1\) \| 1170 \|/);
  const old = structuredClone(r);
  delete old.serve!.c8;
  delete old.serve!.loadGenerator;
  assert.equal(checkBenchResult(old), old);
  assert.not.match(formatTables(old), /concurrency 8|autocannon/);
});

test('dcnr bench --only hop --json: tables, then the JSON object as the last line, saved under --results', () => {
  const dir = tempDir('dcnr-bench-test-');
  try {
    const r = spawnSync(process.execPath, [bin, 'bench', '--quick', '--only', 'hop', '--json', '--results', dir], { encoding: 'utf8', timeout: 300_000 });
    assert.is(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    const json = JSON.parse(lines.at(-1)!);
    assert.match(r.stdout, /\*\*Hop\*\*/);
    // Only hop ran: its part follows the contract, the rest is absent (not faked).
    const hop = BenchResult.shape.hop.parse(json.hop);
    assert.is(hop.sizes.length, 2);
    assert.equal(hop.sizes.map((s) => s.bytes), [1024, 65536]);
    for (const s of hop.sizes) assert.ok(s.n > 0 && s.vnodeHopUs.p50 > 0 && s.natsOneWayUs.p50 > 0);
    assert.is(json.train, undefined);
    assert.is(json.quick, true);
    const saved = readdirSync(dir).filter((f) => f.startsWith('bench-') && f.endsWith('-quick.json'));
    assert.is(saved.length, 1);
    assert.equal(JSON.parse(readFileSync(join(dir, saved[0]), 'utf8')), json);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dcnr bench refuses an unknown benchmark name with the list of names', () => {
  const r = spawnSync(process.execPath, [bin, 'bench', '--only', 'kernels,warp-drive'], { encoding: 'utf8', timeout: 60_000 });
  assert.is(r.status, 2);
  assert.match(r.stderr, /unknown benchmark warp-drive; there are: kernels, hop, train, lm, serve, ledger, federated, recovery, memory, scale/);
});

test.run();
