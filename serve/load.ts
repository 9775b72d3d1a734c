/**
 * The HTTP load driver for `dcnr serve`'s benchmark (bench/serve.ts) and tests: closed-loop
 * POSTs of JSON at a fixed concurrency, until a number of requests or a duration, driven
 * by `autocannon` (issue #15 names it): its own HTTP/1.1 client on `concurrency`
 * keep-alive connections, one request in flight on each (no pipelining), each sending its
 * next request when the previous one is answered. This used to be a hand-written loop of
 * `fetch`; a well-kept generator is one less thing of ours to trust in a benchmark.
 *
 * Latencies: autocannon times every request with `process.hrtime` and emits the float
 * milliseconds on its `response` event; we keep those and take nearest-rank quantiles.
 * Its own result's percentiles come from an HdrHistogram whose lowest discernible value is
 * 1 ms, i.e. whole milliseconds (a 2.9 ms p50 reads 2) — too coarse for a 1.4 ms HTTP round
 * trip or a 5 ms p50 at concurrency 1, so they are not used. Requests/s is measured here
 * too (start to the last answer): autocannon ends a run only on its next sampling tick.
 *
 * What this cannot do: read answers. The serving scenarios' load (scenarios/runner/
 * serve-load.ts) checks every answer's body against the offline forward and has its own
 * loop; this one only counts status codes.
 * Loopback targets only, as every load test here: the caller gives the URL.
 */
import autocannon from 'autocannon';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';

/** What drives the load, with its installed version, for benchmark reports: `autocannon 9.0.0`. */
export const LOAD_GENERATOR = `autocannon ${(createRequire(import.meta.url)('autocannon/package.json') as { version: string }).version}`;

export interface LoadOptions {
  /** The server, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** e.g. `/v1/predict`. */
  path: string;
  /** The JSON body of request i (0-based, in the order requests are sent). */
  body: (i: number) => unknown;
  /** Requests in flight at once (autocannon's connections; at most `requests`). */
  concurrency: number;
  /** Stop after this many requests in all (give this or `durationMs`). */
  requests?: number;
  /** Stop sending after this long, in ms (ignored when `requests` is given). */
  durationMs?: number;
  /** Per-request timeout in ms, rounded up to whole seconds (autocannon's unit, at least 1 s). @default 30000 */
  timeoutMs?: number;
}

export interface LoadResult {
  /** Requests finished: answered (any status) or given up (connection error, timeout). */
  requests: number;
  /** Of those, not a 2xx, or no answer at all (network error, timeout). */
  failed: number;
  /** Finished requests per second, from the start to the last answer. */
  rps: number;
  /** Latency percentiles of the answered requests (any status), ms. */
  p50Ms: number;
  p99Ms: number;
  /** Wall time, from the start to the last answer, ms. */
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
  if (o.requests !== undefined && (!Number.isInteger(o.requests) || o.requests < 1)) throw new Error(`runLoad: requests must be an integer >= 1, got ${o.requests}`);
  const latencies: number[] = [];
  let sent = 0;
  const started = performance.now();
  let lastAt = started;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: o.url,
        // autocannon refuses more connections than requests.
        connections: o.requests === undefined ? o.concurrency : Math.min(o.concurrency, o.requests),
        pipelining: 1,
        ...(o.requests !== undefined ? { amount: o.requests } : { duration: o.durationMs! / 1000 }),
        timeout: Math.max(1, Math.ceil((o.timeoutMs ?? 30_000) / 1000)),
        // Its sampling tick is when a run notices it is over; 100 ms instead of 1 s.
        sampleInt: 100,
        requests: [
          {
            method: 'POST',
            path: o.path,
            headers: { 'content-type': 'application/json' },
            // Called once per request, just before it is sent (and once per connection
            // for its first request, when the connection is made), so `sent` counts
            // requests in the order they go out.
            setupRequest: (req) => ({ ...req, body: JSON.stringify(o.body(sent++)) }),
          },
        ],
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
    instance.on('response', (_client, _status, _bytes, ms) => {
      latencies.push(ms);
      lastAt = performance.now();
    });
    instance.on('reqError', () => (lastAt = performance.now()));
  });
  const durationMs = lastAt - started;
  const statuses: Record<string, number> = {};
  for (const [code, { count }] of Object.entries(result.statusCodeStats as Record<string, { count: number }>)) statuses[code] = count;
  // `errors` counts timeouts and connection errors: requests that got no answer.
  if (result.errors) statuses.error = result.errors;
  const requests = latencies.length + result.errors;
  latencies.sort((a, b) => a - b);
  return {
    requests,
    failed: result.non2xx + result.errors,
    rps: durationMs > 0 ? requests / (durationMs / 1000) : 0,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    durationMs,
    statuses,
  };
}
