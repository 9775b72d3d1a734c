/**
 * A small HTTP load driver for `dcnr serve` (benchmarks, the serve scenarios): N
 * concurrent loops of `fetch`, each sending its next request when the previous one is
 * answered (closed loop), until a number of requests or a duration. Plain `fetch`
 * (undici, keep-alive) rather than autocannon: autocannon is not a dependency of dcnr.
 * Loopback targets only, as every load test here: the caller gives the URL.
 */
import { performance } from 'node:perf_hooks';

export interface LoadOptions {
  /** The server, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** e.g. `/v1/predict`. */
  path: string;
  /** The JSON body of request i (0-based, in the order requests are sent). */
  body: (i: number) => unknown;
  /** Requests in flight at once. */
  concurrency: number;
  /** Stop after this many requests in all (give this or `durationMs`). */
  requests?: number;
  /** Stop sending after this long, in ms. */
  durationMs?: number;
  /** Per-request timeout in ms. @default 30000 */
  timeoutMs?: number;
}

export interface LoadResult {
  /** Requests answered (any status). */
  requests: number;
  /** Of those, not a 2xx, or no answer at all (network error, timeout). */
  failed: number;
  /** Answered requests per second of wall time. */
  rps: number;
  /** Latency percentiles of the answered requests, ms. */
  p50Ms: number;
  p99Ms: number;
  /** Wall time, ms. */
  durationMs: number;
  /** How many of each status code (`error` for no answer), for reports. */
  statuses: Record<string, number>;
}

/** The q-quantile (0..1) of ascending `sorted` (nearest rank), 0 for none. */
const quantile = (sorted: number[], q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] : 0);

/**
 * @example
 * const r = await runLoad({ url, path: '/v1/predict', body: () => ({ inputs: [row] }), concurrency: 64, requests: 2000 });
 * console.log(r.rps, r.p99Ms);
 */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  if (o.requests === undefined && o.durationMs === undefined) throw new Error('runLoad: give requests or durationMs');
  if (!Number.isInteger(o.concurrency) || o.concurrency < 1) throw new Error(`runLoad: concurrency must be an integer >= 1, got ${o.concurrency}`);
  const target = new URL(o.path, o.url).toString();
  const timeoutMs = o.timeoutMs ?? 30_000;
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let sent = 0;
  let failed = 0;
  const started = performance.now();
  const stopAt = o.durationMs === undefined ? Infinity : started + o.durationMs;
  const more = () => (o.requests === undefined || sent < o.requests) && performance.now() < stopAt;

  async function loop(): Promise<void> {
    while (more()) {
      const i = sent++;
      const t0 = performance.now();
      let status = 'error';
      try {
        const res = await fetch(target, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(o.body(i)),
          signal: AbortSignal.timeout(timeoutMs),
        });
        await res.arrayBuffer(); // read to the end, so the connection is reused
        status = String(res.status);
        if (!res.ok) failed++;
      } catch {
        failed++;
      }
      latencies.push(performance.now() - t0);
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  }

  await Promise.all(Array.from({ length: o.concurrency }, loop));
  const durationMs = performance.now() - started;
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    failed,
    rps: latencies.length / (durationMs / 1000),
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    durationMs,
    statuses,
  };
}
