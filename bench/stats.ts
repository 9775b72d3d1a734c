/**
 * The statistics every benchmark reports with. Pure functions, tested in
 * stats.test.ts: the figures are only as good as this arithmetic.
 */

/** p-th percentile (0–100) by linear interpolation between closest ranks (numpy's default). */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) throw new Error('percentile of no samples');
  if (!(p >= 0 && p <= 100)) throw new Error(`percentile must be in [0, 100], got ${p}`);
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

export const median = (samples: readonly number[]): number => percentile(samples, 50);

/** p50 / p99 / max / n of a latency sample set. */
export interface Summary {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export function summarize(samples: readonly number[]): Summary {
  return { n: samples.length, p50: percentile(samples, 50), p99: percentile(samples, 99), max: Math.max(...samples) };
}

/** GFLOP/s of an m×k · k×n matmul (2·m·k·n flops) that took `ms`. */
export function matmulGflops(m: number, k: number, n: number, ms: number): number {
  if (!(ms > 0)) throw new Error(`matmulGflops: time must be > 0 ms, got ${ms}`);
  return (2 * m * k * n) / (ms / 1000) / 1e9;
}

/** Round to `digits` significant digits (tables and JSON stay readable; never rounds to 0). */
export function sig(x: number, digits = 3): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  return Number(x.toPrecision(digits));
}

export interface TimedRuns {
  /** Milliseconds of each measured run (warm-up excluded). */
  runs: number[];
  medianMs: number;
}

/**
 * Times `fn`: `warmup` unmeasured runs, then at least `minRuns` measured runs and
 * more until `budgetMs` of measured time is used (at most `maxRuns`), so fast and
 * slow variants both get a stable median in bounded time.
 */
export async function timeRuns(
  fn: () => unknown | Promise<unknown>,
  o: { warmup?: number; minRuns?: number; maxRuns?: number; budgetMs?: number } = {},
): Promise<TimedRuns> {
  const { warmup = 1, minRuns = 3, maxRuns = 50, budgetMs = 1000 } = o;
  for (let i = 0; i < warmup; i++) await fn();
  const runs: number[] = [];
  let spent = 0;
  while (runs.length < minRuns || (spent < budgetMs && runs.length < maxRuns)) {
    const t = performance.now();
    await fn();
    const ms = performance.now() - t;
    runs.push(ms);
    spent += ms;
  }
  return { runs, medianMs: median(runs) };
}

/** `a / b` as a readable ratio string, e.g. `58.2×`; `—` when either side is missing. */
export function ratio(a: number | null | undefined, b: number | null | undefined): string {
  if (a == null || b == null || b === 0) return '—';
  const r = a / b;
  return `${r >= 10 ? r.toFixed(0) : r >= 1 ? r.toFixed(1) : r.toFixed(2)}×`;
}
