import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { matmulGflops, median, percentile, ratio, sig, summarize, timeRuns } from './stats.js';

test('percentile interpolates between closest ranks (numpy linear)', () => {
  const xs = [15, 20, 35, 40, 50];
  assert.is(percentile(xs, 0), 15);
  assert.is(percentile(xs, 100), 50);
  assert.is(percentile(xs, 50), 35);
  assert.is(percentile(xs, 25), 20);
  assert.ok(Math.abs(percentile(xs, 40) - 29) < 1e-12); // rank 1.6 → 20 + 0.6·15
  assert.ok(Math.abs(percentile([1, 2, 3, 4], 99) - 3.97) < 1e-12);
});

test('percentile does not care about input order and does not mutate it', () => {
  const xs = [5, 1, 4, 2, 3];
  assert.is(median(xs), 3);
  assert.equal(xs, [5, 1, 4, 2, 3]);
  assert.is(median([7]), 7);
  assert.is(median([1, 2]), 1.5);
});

test('percentile refuses empty input and out-of-range p', () => {
  assert.throws(() => percentile([], 50), /no samples/);
  assert.throws(() => percentile([1], 101), /\[0, 100\]/);
  assert.throws(() => percentile([1], NaN), /\[0, 100\]/);
});

test('summarize reports n, p50, p99 and max', () => {
  const xs = Array.from({ length: 101 }, (_, i) => i);
  assert.equal(summarize(xs), { n: 101, p50: 50, p99: 99, max: 100 });
});

test('matmulGflops counts 2·m·k·n flops', () => {
  assert.is(matmulGflops(1000, 1000, 1000, 1000), 2); // 2e9 flops in 1 s
  assert.is(matmulGflops(512, 512, 512, 1), (2 * 512 ** 3) / 1e-3 / 1e9);
  assert.throws(() => matmulGflops(1, 1, 1, 0), /> 0 ms/);
});

test('sig keeps significant digits and never rounds a small value to 0', () => {
  assert.is(sig(123456), 123000);
  assert.is(sig(0.000123456), 0.000123);
  assert.is(sig(2.5, 1), 3);
  assert.is(sig(0), 0);
});

test('ratio formats a / b and marks missing sides', () => {
  assert.is(ratio(200, 2), '100×');
  assert.is(ratio(3, 2), '1.5×');
  assert.is(ratio(1, 4), '0.25×');
  assert.is(ratio(null, 4), '—');
  assert.is(ratio(1, 0), '—');
});

test('timeRuns: warm-up is not measured; at least minRuns, at most maxRuns', async () => {
  let calls = 0;
  const r = await timeRuns(() => void calls++, { warmup: 2, minRuns: 5, maxRuns: 7, budgetMs: 60_000 });
  assert.is(calls, 2 + r.runs.length);
  assert.ok(r.runs.length >= 5 && r.runs.length <= 7, `${r.runs.length} runs`);
  assert.is(r.medianMs, median(r.runs));
  const one = await timeRuns(async () => {}, { warmup: 0, minRuns: 1, maxRuns: 1 });
  assert.is(one.runs.length, 1);
});

test.run();
