/**
 * What the serve tests share: a trained deployment served from the test's process
 * (`serveTrained`), HTTP calls, a backend wrapper that records every forward (its input
 * and output) and can fail chosen ones, two real versions as one backend, and a parser
 * of the Prometheus text format that refuses anything the format does not allow. Real
 * backends underneath; the wrappers only watch (and, where a test says so, inject a
 * failure).
 */
import type { Tensor } from '../../runtime/tensor.js';
import type { ServeBackend } from '../../serve/backend.js';
import { startServer, type ServeServer } from '../../serve/http.js';
import { createLocalBackend, type LocalBackend } from '../../serve/local-backend.js';
import { trainDeployment, type TrainedDeployment } from './trained.js';

export interface Served {
  run: TrainedDeployment;
  backend: LocalBackend;
  server: ServeServer;
  /** Close the server and the backend, remove the store. */
  stop(): Promise<void>;
}

/** Train `model` (`dcnr train --pnodes 0 …args`) and serve it from this process with the default options. */
export async function serveTrained(model: string, args: string[]): Promise<Served> {
  const run = await trainDeployment(model, args);
  const backend = await createLocalBackend({ model: run.model, tensors: run.tensors });
  const server = await startServer({ backend });
  return {
    run,
    backend,
    server,
    async stop() {
      await server.close();
      await backend.close();
      run.remove();
    },
  };
}

export interface Reply {
  status: number;
  headers: Headers;
  json: any;
}

/** One HTTP call; `body` is sent as it is when a string, else as JSON. */
export async function call(url: string, method: string, path: string, body?: unknown): Promise<Reply> {
  const res = await fetch(url + path, { method, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, headers: res.headers, json };
}

export interface Recorded {
  input: Tensor;
  output?: Tensor;
  failed?: boolean;
}

/** `backend` with every forward recorded; `failWhen(input)` true makes that forward reject (an injected fault). */
export function recording(backend: ServeBackend, failWhen?: (input: Tensor) => boolean): { backend: ServeBackend; calls: Recorded[] } {
  const calls: Recorded[] = [];
  return {
    calls,
    backend: {
      model: backend.model,
      rowExact: backend.rowExact,
      version: () => backend.version(),
      async forward(input, version, deadline) {
        const c: Recorded = { input: { shape: [...input.shape], data: input.data.slice() } };
        calls.push(c);
        if (failWhen?.(input)) {
          c.failed = true;
          throw new Error('injected fault: this forward fails');
        }
        c.output = await backend.forward(input, version, deadline);
        return c.output;
      },
      close: () => backend.close(),
    },
  };
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(${LABEL}(?:,${LABEL})*)?\\})? (\\S+)$`);

/**
 * The samples of a Prometheus text exposition (format 0.0.4); throws on a line the
 * format does not allow, a sample whose family has no TYPE before it, a value that is
 * not a number, or a histogram whose buckets are not cumulative up to `_count`.
 */
export function parsePrometheus(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ')) {
      if (!new RegExp(`^# HELP ${NAME} .*$`).test(line)) throw new Error(`bad HELP line: ${line}`);
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const m = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line);
      if (!m) throw new Error(`bad TYPE line: ${line}`);
      if (types.has(m[1])) throw new Error(`TYPE of ${m[1]} given twice`);
      types.set(m[1], m[2]);
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`bad sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\(.)/g, '$1');
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    if (Number.isNaN(value) && m[3] !== 'NaN') throw new Error(`bad value in: ${line}`);
    const family = types.has(m[1]) ? m[1] : m[1].replace(/_(bucket|sum|count)$/, '');
    if (!types.has(family)) throw new Error(`sample before its TYPE: ${line}`);
    samples.push({ name: m[1], labels, value });
  }
  for (const [family, type] of types) {
    if (type !== 'histogram') continue;
    const series = new Map<string, Sample[]>();
    for (const s of samples.filter((s) => s.name === `${family}_bucket`)) {
      const { le, ...rest } = s.labels;
      const key = JSON.stringify(rest);
      series.set(key, [...(series.get(key) ?? []), s]);
    }
    for (const [key, buckets] of series) {
      for (let i = 1; i < buckets.length; i++) if (buckets[i].value < buckets[i - 1].value) throw new Error(`${family}${key}: buckets are not cumulative`);
      const count = samples.find((s) => s.name === `${family}_count` && JSON.stringify(s.labels) === key);
      if (buckets.at(-1)!.labels.le !== '+Inf' || buckets.at(-1)!.value !== count?.value) throw new Error(`${family}${key}: the +Inf bucket is not _count`);
    }
  }
  return { types, samples };
}

/** The value of the one sample named `name` whose labels include `labels`, or undefined. */
export const metric = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

/**
 * Two real backends as one that holds two versions: `version()` answers `a`'s and `b`'s
 * in turn (as a cluster's latest version moves on), and each forward runs on the backend
 * of the version it is given. Shows which version computed an answer.
 */
export function twoVersions(a: ServeBackend, b: ServeBackend): ServeBackend {
  let turn = 0;
  return {
    model: a.model,
    rowExact: a.rowExact && b.rowExact,
    version: () => (turn++ % 2 ? b : a).version(),
    forward: (input, version, deadline) => (version.id === a.version().id ? a : b).forward(input, version, deadline),
    close: async () => {},
  };
}

/** A copy of `tensors` with every value times `factor`: other parameters of the same model. */
export const scaled = (tensors: Array<Record<string, Float32Array>>, factor: number) =>
  tensors.map((t) => Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.map((x) => Math.fround(x * factor))])));
