#!/usr/bin/env node
// The cost of tracing on training throughput: `dcnr train --pnodes 0` with telemetry
// off, with `--otel console` (every span a line on stderr, here into /dev/null) and with
// `--otel otlp` to a local OTLP/HTTP sink (batched export, what a collector would get),
// runs ALTERNATING between the modes so load from other work on the machine hits all of
// them alike. Prints every run, then median, min and max samples/s per mode and the
// ratio of the medians to "off"; checks that tracing leaves the parameters bit-identical.
//
//   node scripts/otel-overhead.mjs [--rounds 3] [--steps 300] [--batch 64]
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, steps: { type: 'string', default: '300' }, batch: { type: 'string', default: '64' } } });
const rounds = Number(values.rounds);
const steps = Number(values.steps);
const batch = Number(values.batch);
for (const [k, v] of Object.entries({ rounds, steps, batch })) {
  if (!Number.isInteger(v) || v < 1) {
    console.error(`--${k} must be a positive integer`);
    process.exit(2);
  }
}

// The OTLP sink: accepts every export, counts requests and bytes.
const sink = { requests: 0, bytes: 0 };
const server = createServer((req, res) => {
  req.on('data', (c) => (sink.bytes += c.length));
  req.on('end', () => {
    sink.requests++;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const endpoint = `http://127.0.0.1:${server.address().port}`;

const store = mkdtempSync(join(tmpdir(), 'dcnr-otel-overhead-'));
const bin = new URL('../bin/dcnr.js', import.meta.url).pathname;
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_') && k !== 'DCNR_OTEL'));
const modes = {
  off: { args: [], env },
  console: { args: ['--otel', 'console'], env },
  otlp: { args: ['--otel', 'otlp'], env: { ...env, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint } },
};

function run(mode) {
  const m = modes[mode];
  const args = [bin, ...m.args, 'train', '--model', 'mnist-mlp', '--pnodes', '0', '--steps', String(steps), '--batch', String(batch), '--seed', '1', '--store', join(store, mode), '--json'];
  return new Promise((ok, ko) => {
    const child = spawn(process.execPath, args, { env: m.env, stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', ko);
    child.on('exit', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      try {
        if (code !== 0) throw new Error(`exit ${code}`);
        ok(JSON.parse(last));
      } catch (err) {
        ko(new Error(`${mode} run failed (${err.message}): ${last.slice(0, 200)}`));
      }
    });
  });
}

const results = Object.fromEntries(Object.keys(modes).map((m) => [m, []]));
const hashes = new Set();
try {
  for (let r = 1; r <= rounds; r++) {
    for (const mode of Object.keys(modes)) {
      const j = await run(mode);
      results[mode].push(j.samplesPerSec);
      hashes.add(j.paramsHash);
      console.log(`round ${r}/${rounds} ${mode.padEnd(7)} ${j.samplesPerSec.toFixed(0)} samples/s (${j.durationMs} ms, ${j.kernelMode})`);
    }
  }
} finally {
  server.close();
  rmSync(store, { recursive: true, force: true });
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const off = median(results.off);
const summary = {};
for (const [mode, xs] of Object.entries(results)) {
  summary[mode] = { median: Math.round(median(xs)), min: Math.round(Math.min(...xs)), max: Math.round(Math.max(...xs)), ratioToOff: Number((median(xs) / off).toFixed(3)), runs: xs.map(Math.round) };
  console.log(`${mode.padEnd(7)} median ${summary[mode].median} samples/s (min ${summary[mode].min}, max ${summary[mode].max}), ${summary[mode].ratioToOff}× off`);
}
console.log(`otlp sink: ${sink.requests} requests, ${(sink.bytes / 1e6).toFixed(1)} MB; params identical across modes: ${hashes.size === 1}`);
console.log(JSON.stringify({ steps, batch, rounds, summary, otlpSink: sink, paramsIdentical: hashes.size === 1 }));
process.exit(hashes.size === 1 ? 0 : 1);
