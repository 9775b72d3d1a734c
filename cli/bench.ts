/**
 * `dcnr bench [--quick] [--json] [--only a,b]`: every benchmark in bench/, side by
 * side in one run. A markdown table to stdout; with --json the whole result object
 * as the last stdout line. The result is also saved under `--results` (default
 * `results/bench-<time>.json`) so runs can be compared.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, hostname, release, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { BENCHMARKS, type BenchmarkName } from '../bench/index.js';
import { checkBenchResult, formatTables, type BenchResult } from '../bench/result.js';
import { fail } from './output.js';

export interface BenchCliOptions {
  quick: boolean;
  json: boolean;
  only?: string;
  results: string;
}

export async function benchCommand(opts: BenchCliOptions): Promise<void> {
  const names = Object.keys(BENCHMARKS) as BenchmarkName[];
  const only = opts.only ? opts.only.split(',').map((s) => s.trim()).filter(Boolean) : names;
  const unknown = only.filter((n) => !names.includes(n as BenchmarkName));
  if (unknown.length) fail(`unknown benchmark ${unknown.join(', ')}; there are: ${names.join(', ')}`);

  const workDir = mkdtempSync(join(tmpdir(), 'dcnr-bench-'));
  const started = Date.now();
  const t0 = performance.now();
  const partial: Record<string, unknown> = {
    version: 1,
    quick: opts.quick,
    startedAt: new Date(started).toISOString(),
    machine: {
      cpu: cpus()[0]?.model.trim() ?? 'unknown',
      cores: cpus().length,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.versions.node,
      os: `${process.platform} ${release()} (${hostname()})`,
    },
  };
  const progress = (line: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
  const cleanup = () => rmSync(workDir, { recursive: true, force: true });
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  let failed = 0;
  try {
    for (const name of only as BenchmarkName[]) {
      const b = BENCHMARKS[name];
      progress(`${name}: ${b.description}`);
      try {
        const r = (await b.run({ quick: opts.quick, progress, workDir })) as unknown as Record<string, unknown>;
        if (name === 'kernels') {
          partial.kernels = r.results;
          partial.kernelsSkipped = r.skipped;
          partial.torch = r.torch;
        } else partial[name] = r;
      } catch (err) {
        failed++;
        progress(`${name} FAILED: ${(err as Error).stack ?? err}`);
      }
    }
  } finally {
    cleanup();
  }
  partial.durationMs = Math.round(performance.now() - t0);
  process.stdout.write(`${formatTables(partial as Partial<BenchResult>)}\n`);

  let complete = true;
  try {
    checkBenchResult(partial);
  } catch (err) {
    complete = false;
    if (only.length === names.length) progress((err as Error).message);
  }
  const dir = resolve(opts.results);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `bench-${new Date(started).toISOString().replace(/[:.]/g, '-')}${opts.quick ? '-quick' : ''}.json`);
  writeFileSync(file, `${JSON.stringify(partial, null, 2)}\n`);
  progress(`results written to ${file}${complete ? '' : ' (partial)'}`);
  if (opts.json) process.stdout.write(`${JSON.stringify(partial)}\n`);
  if (failed > 0 || (only.length === names.length && !complete)) process.exitCode = 1;
}
