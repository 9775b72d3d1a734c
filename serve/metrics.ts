/**
 * The server's metrics in the Prometheus text exposition format (version 0.0.4),
 * written by hand: four families do not need a client library (`prom-client` is not
 * a dependency of dcnr). Names and labels: docs/serving.md, "Metrics".
 */

/** Label values are escaped as the format says: backslash, double quote, newline. */
const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const labelText = (labels: Record<string, string>) => {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
};
/** A number as Prometheus writes it. */
const num = (v: number) => (v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : Number.isNaN(v) ? 'NaN' : String(v));

interface Histogram {
  buckets: number[];
  counts: number[];
  sum: number;
  count: number;
}

/** A histogram family: one series per label set, cumulative buckets on output. */
class HistogramFamily {
  readonly series = new Map<string, { labels: Record<string, string>; h: Histogram }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: number[],
  ) {}
  observe(labels: Record<string, string>, v: number): void {
    const key = labelText(labels);
    let s = this.series.get(key);
    if (!s) {
      s = { labels, h: { buckets: this.buckets, counts: this.buckets.map(() => 0), sum: 0, count: 0 } };
      this.series.set(key, s);
    }
    const i = this.buckets.findIndex((b) => v <= b);
    if (i >= 0) s.h.counts[i]++;
    s.h.sum += v;
    s.h.count++;
  }
  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const { labels, h } of this.series.values()) {
      let cum = 0;
      h.buckets.forEach((b, i) => {
        cum += h.counts[i];
        out.push(`${this.name}_bucket${labelText({ ...labels, le: num(b) })} ${cum}`);
      });
      out.push(`${this.name}_bucket${labelText({ ...labels, le: '+Inf' })} ${h.count}`);
      out.push(`${this.name}_sum${labelText(labels)} ${num(h.sum)}`);
      out.push(`${this.name}_count${labelText(labels)} ${h.count}`);
    }
    return out;
  }
}

/** Seconds: 0.5 ms … 10 s. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Rows per forward: powers of two to 256. */
export const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];

export interface ServeMetrics {
  /** A request answered: its route (`predict`, `generate`, `healthz`, `metrics`, `other`), status code and seconds taken. */
  request(route: string, code: number, seconds: number): void;
  /** A forward ran `rows` rows for `requests` requests. */
  batch(route: 'predict' | 'generate', rows: number, requests: number): void;
  inFlight(delta: 1 | -1): void;
  /** The text of `GET /metrics`; `version` is the version served now (none when the backend cannot answer). */
  render(served: { deployment: string; version?: { id: string; paramsHash: string } }): string;
}

export function createMetrics(): ServeMetrics {
  const requests = new Map<string, { labels: Record<string, string>; n: number }>();
  const latency = new HistogramFamily('dcnr_serve_request_duration_seconds', 'Time from a request\'s arrival to its answer, by route.', LATENCY_BUCKETS);
  const batchRows = new HistogramFamily('dcnr_serve_batch_rows', 'Rows per forward pass, by route.', BATCH_BUCKETS);
  const batchRequests = new HistogramFamily('dcnr_serve_batch_requests', 'Requests per forward pass, by route.', BATCH_BUCKETS);
  let inFlight = 0;
  return {
    request(route, code, seconds) {
      const labels = { route, code: String(code) };
      const key = labelText(labels);
      const c = requests.get(key) ?? { labels, n: 0 };
      c.n++;
      requests.set(key, c);
      latency.observe({ route }, seconds);
    },
    batch(route, rows, n) {
      batchRows.observe({ route }, rows);
      batchRequests.observe({ route }, n);
    },
    inFlight(delta) {
      inFlight += delta;
    },
    render({ deployment, version }) {
      const lines = ['# HELP dcnr_serve_requests_total Requests answered, by route and HTTP status code.', '# TYPE dcnr_serve_requests_total counter'];
      for (const { labels, n } of requests.values()) lines.push(`dcnr_serve_requests_total${labelText(labels)} ${n}`);
      lines.push(...latency.render(), ...batchRows.render(), ...batchRequests.render());
      lines.push('# HELP dcnr_serve_in_flight_requests Requests being answered now.', '# TYPE dcnr_serve_in_flight_requests gauge', `dcnr_serve_in_flight_requests ${inFlight}`);
      lines.push(
        '# HELP dcnr_serve_params_version The parameter version answering requests now (value 1; none while the backend cannot answer).',
        '# TYPE dcnr_serve_params_version gauge',
      );
      if (version) lines.push(`dcnr_serve_params_version${labelText({ deployment, version: version.id, params_hash: version.paramsHash })} 1`);
      return lines.join('\n') + '\n';
    },
  };
}
