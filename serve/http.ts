/**
 * The HTTP server of `dcnr serve` (node:http, no framework), on loopback unless told
 * otherwise: `POST /v1/predict` (classifiers), `POST /v1/generate` (language models),
 * `GET /healthz`, `GET /metrics`. Every body is read as a stream under a size limit and
 * validated before it reaches the model; every error is `{"error": "<one line>"}` with
 * 400, 404, 405, 413 or 503. The API, limits and metrics: docs/serving.md.
 */
import { randomInt } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { BOUNDARY_ID, decode, loadTextDataset, type TextDataset } from '../runtime/data/text.js';
import { contextOf, isTextDataset } from '../runtime/model.js';
import { sample, type Forward } from '../trainer/generate.js';
import type { ServeBackend, ServedVersion } from './backend.js';
import { createBatcher, DEFAULT_MAX_BATCH, DEFAULT_WINDOW_MS } from './batcher.js';
import { asHttpError, HttpError } from './errors.js';
import { createMetrics, type ServeMetrics } from './metrics.js';
import { DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_TOKENS_LIMIT, parseGenerate, parsePredict, readBody } from './requests.js';

export interface ServerOptions {
  /** What answers: the model, its versions and its forward pass. Not closed by the server's `close`. */
  backend: ServeBackend;
  /** @default '127.0.0.1' (loopback only) */
  host?: string;
  /** 0 = any free port. @default 0 */
  port?: number;
  /** How long the first request of a batch waits for others, in ms. @default 2 */
  windowMs?: number;
  /** Rows per forward at most. @default 64 */
  maxBatch?: number;
  /** Forwards running at once (raise for a backend that pipelines, e.g. a cluster). @default 1 */
  maxInFlight?: number;
  /** A predict request that finds no forward running goes at once (serve/batcher.ts `idleDispatch`): for backends whose forward yields, e.g. the VNodes'. @default false */
  idleDispatch?: boolean;
  /** Rows waiting for a forward at most; past it a request gets 503 at once. @default 16 × maxBatch */
  maxQueueRows?: number;
  /** Rows one predict request may have. @default maxBatch */
  maxRows?: number;
  /** Bytes a request body may have. @default 4 MiB */
  maxBodyBytes?: number;
  /** Time a request may take (the backend's deadline); past it, 503. @default 30000 */
  requestTimeoutMs?: number;
  /** The largest `maxTokens` a generate request may ask for. @default 256 */
  maxTokensLimit?: number;
  /**
   * Batch the token forwards of concurrent generate requests (of the same version),
   * each window right-padded to the context. Only when the backend is `rowExact`:
   * otherwise batching would change a probability's last bits and, rarely, a drawn
   * token. @default backend.rowExact
   */
  batchGenerate?: boolean;
}

/** A running server: its URL and how to stop it. */
export interface ServeServer {
  /** e.g. `http://127.0.0.1:8080` (no trailing slash). */
  url: string;
  /** Stop listening, fail queued requests with 503, let running ones finish, close every connection. The backend stays open. */
  close(): Promise<void>;
}

/** Route → the one method it answers. */
const ROUTES: Record<string, 'GET' | 'POST'> = { '/v1/predict': 'POST', '/v1/generate': 'POST', '/healthz': 'GET', '/metrics': 'GET' };
const ROUTE_LIST = Object.entries(ROUTES).map(([p, m]) => `${m} ${p}`).join(', ');
/** The route label of a path in metrics: a fixed set, whatever clients ask for. */
const routeLabel = (path: string) => (Object.hasOwn(ROUTES, path) ? path.split('/').pop()! : 'other');

/**
 * Serve `backend` over HTTP.
 * @example
 * const server = await startServer({ backend, port: 8080 });
 * // curl -s localhost:8080/v1/predict -d '{"inputs": [[0, 0.5, ...]]}'
 * await server.close();
 */
export async function startServer(o: ServerOptions): Promise<ServeServer> {
  const { backend } = o;
  const model = backend.model;
  const deployment = model.spec.name;
  const maxBatch = o.maxBatch ?? DEFAULT_MAX_BATCH;
  const maxRows = o.maxRows ?? maxBatch;
  const maxBodyBytes = o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const requestTimeoutMs = o.requestTimeoutMs ?? 30_000;
  const maxTokensLimit = o.maxTokensLimit ?? DEFAULT_MAX_TOKENS_LIMIT;
  const language = isTextDataset(model.spec);
  const T = contextOf(model.spec);
  // A language model's vocabulary, read once: a text file that is gone fails the start, not a request.
  let text: TextDataset | undefined;
  if (language) {
    text = loadTextDataset(model.spec.dataset);
    if (model.outputFeatures !== text.vocab.length) throw new Error(`${deployment} predicts ${model.outputFeatures} tokens, but ${model.spec.dataset} has a vocabulary of ${text.vocab.length}`);
  }
  const metrics = createMetrics();
  const batchOptions = { backend, windowMs: o.windowMs ?? DEFAULT_WINDOW_MS, maxBatch, maxInFlight: o.maxInFlight, maxQueueRows: o.maxQueueRows };
  const predictBatcher = createBatcher({ ...batchOptions, idleDispatch: o.idleDispatch, onBatch: (rows, n) => metrics.batch('predict', rows, n) });
  let sampling = 0;
  const generateBatcher = createBatcher({ ...batchOptions, expected: () => sampling, onBatch: (rows, n) => metrics.batch('generate', rows, n) });
  const batchGenerate = o.batchGenerate ?? backend.rowExact ?? false;

  /** The version answering now, or 503 with the backend's reason. */
  const current = (): ServedVersion => {
    try {
      return backend.version();
    } catch (err) {
      throw new HttpError(503, `no parameter version can answer: ${(err as Error).message}`);
    }
  };

  async function predict(req: IncomingMessage, started: number) {
    if (language) throw new HttpError(404, `${deployment} is a language model: POST /v1/generate {"prompt", "maxTokens", "temperature", "seed"}`);
    const { x, rows } = parsePredict(await readBody(req, maxBodyBytes), model.inputFeatures, maxRows);
    current(); // a backend that cannot answer says so before the request queues
    const { output, version } = await predictBatcher.submit(x, rows, model.inputFeatures, started + requestTimeoutMs);
    const per = output.data.length / rows;
    const outputs = Array.from({ length: rows }, (_, r) => Array.from(output.data.subarray(r * per, (r + 1) * per)));
    return { outputs, paramsVersion: version.id, paramsHash: version.paramsHash };
  }

  async function generate(req: IncomingMessage, started: number) {
    if (!text) throw new HttpError(404, `${deployment} is a classifier (${model.spec.dataset}): POST /v1/predict {"inputs": [[${model.inputFeatures} numbers], ...]}`);
    const data = text;
    const g = parseGenerate(await readBody(req, maxBodyBytes), data, { defaultMaxTokens: 2 * data.maxLength, maxTokensLimit, defaultSeed: () => randomInt(2 ** 47) });
    const version = current(); // one version for every token of the sample
    const deadline = started + requestTimeoutMs;
    let forwards = 0;
    const forward: Forward = batchGenerate
      ? async (x) => {
          // Every window right-padded to the context, so samples at different lengths share
          // a forward: a causal model's outputs at the real positions do not change (rowExact).
          const L = x.shape[1];
          const padded = new Float32Array(T).fill(BOUNDARY_ID);
          padded.set(x.data);
          const { output } = await generateBatcher.submit(padded, 1, T, deadline, { version, first: forwards++ === 0 });
          const perPosition = output.data.length / T;
          return { shape: [1, L, perPosition], data: output.data.subarray(0, L * perPosition) };
        }
      : async (x) => {
          metrics.batch('generate', 1, 1);
          return backend.forward(x, version, deadline);
        };
    sampling++;
    let ids: number[];
    try {
      ids = await sample(forward, { context: T, vocab: data.vocab.length, temperature: g.temperature, seed: g.seed, index: 0, maxTokens: g.maxTokens, prompt: g.prompt });
    } finally {
      sampling--;
      generateBatcher.poke(); // the samples still running may all be waiting now
    }
    return { text: decode(data, ids), paramsVersion: version.id, paramsHash: version.paramsHash, seed: g.seed };
  }

  function healthz() {
    const version = current();
    return { status: 'ok', deployment, kind: language ? 'language-model' : 'classifier', paramsVersion: version.id, paramsHash: version.paramsHash };
  }

  function servedNow() {
    try {
      return backend.version();
    } catch {
      return undefined;
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    let path = '';
    try {
      path = new URL(req.url ?? '/', 'http://serve').pathname;
    } catch {
      /* an unparseable target is answered as an unknown route */
    }
    const route = routeLabel(path);
    metrics.inFlight(1);
    let code = 200;
    try {
      const method = Object.hasOwn(ROUTES, path) ? ROUTES[path] : undefined;
      if (!method) throw new HttpError(404, `no route ${req.method} ${path.length > 100 ? `${path.slice(0, 100)}…` : path}; the routes are ${ROUTE_LIST}`);
      if (req.method !== method) {
        res.setHeader('allow', method);
        throw new HttpError(405, `${path} takes ${method}, not ${req.method}`);
      }
      if (path === '/metrics') {
        const body = metrics.render({ deployment, version: servedNow() });
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(body);
        return;
      }
      const body = path === '/v1/predict' ? await predict(req, started) : path === '/v1/generate' ? await generate(req, started) : healthz();
      send(res, 200, body);
    } catch (err) {
      const e = asHttpError(err);
      code = e.status;
      // A body past the limit is not read to its end: the connection closes after the answer.
      if (e.status === 413) res.setHeader('connection', 'close');
      send(res, e.status, { error: e.message });
    } finally {
      metrics.inFlight(-1);
      metrics.request(route, code, (Date.now() - started) / 1000);
    }
  }

  const running = new Set<Promise<void>>();
  const server = createServer((req, res) => {
    const p = handle(req, res)
      .catch((err) => {
        // handle answers every error itself; this is for a failure while answering
        if (!res.headersSent) send(res, 503, { error: asHttpError(err).message });
        else res.destroy();
      })
      .finally(() => running.delete(p));
    running.add(p);
  });
  // a client that sends its request slowly (or never ends it) is cut off at the request's deadline
  server.requestTimeout = requestTimeoutMs;
  server.headersTimeout = Math.min(server.headersTimeout, requestTimeoutMs);
  const host = o.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(err.code === 'EADDRINUSE' ? `serve: port ${o.port} on ${host} is in use (choose another with --port, 0 = any)` : `serve: ${err.message}`)));
    server.listen(o.port ?? 0, host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  const shown = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}`,
    async close() {
      predictBatcher.close();
      generateBatcher.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all(running);
      // keep-alive connections would hold `close` open until the client hangs up
      server.closeAllConnections();
      await closed;
    },
  };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
