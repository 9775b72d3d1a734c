/**
 * Micro-batching: rows that concurrent requests submit within a short window are
 * concatenated into one `backend.forward` and the output is split back, request by
 * request, in order. A queue holds the requests that can share a forward: the same row
 * width (a predict's input features; generate's windows, padded to the context) and the
 * same pinned version (none for predict: a batch takes the version current when it
 * starts, one version for all its rows).
 *
 * A queue is flushed, when a backend slot is free (`maxInFlight` forwards at once), as
 * soon as it holds `maxBatch` rows, its oldest request has waited `windowMs`, no forward
 * is running (with `idleDispatch`), or every
 * requester that could still submit is waiting (`expected`: generate's running samples,
 * so a sample waits a window for company at its first token only, not at every token).
 * A request is never split: a batch takes whole requests while they fit in `maxBatch`
 * rows, and always at least one. A failed forward fails the requests of its batch, no
 * others.
 */
import type { Tensor } from '../runtime/tensor.js';
import type { ServeBackend, ServedVersion } from './backend.js';
import { HttpError } from './errors.js';

export interface BatcherOptions {
  backend: ServeBackend;
  /** How long the first request of a batch waits for others, in ms. @default 2 */
  windowMs?: number;
  /** Rows per forward at most (a single larger request still goes, alone). @default 64 */
  maxBatch?: number;
  /** Forwards running at once. 1 suits a backend that computes in this process; a cluster's pipeline can take more. @default 1 */
  maxInFlight?: number;
  /** Rows waiting at most; a request past it gets 503 at once (load shedding). @default 16 × maxBatch */
  maxQueueRows?: number;
  /**
   * A request that finds no forward running goes at once instead of waiting the window.
   * For a backend whose forward yields while it waits (the VNodes: network hops), so
   * requests gather during a forward; not for one that computes in this process, where
   * nothing arrives during a forward and every request would go alone. @default false
   */
  idleDispatch?: boolean;
  /** How many requesters may still submit; when that many are queued, the queues flush without waiting. @default none: the window decides */
  expected?: () => number;
  /** Called once per forward with its rows and requests (metrics). */
  onBatch?: (rows: number, requests: number) => void;
}

/** What one request gets back: its rows of the output and the version that computed them. */
export interface BatchResult {
  output: Tensor;
  version: ServedVersion;
}

export interface SubmitOptions {
  /** Compute on this version (generate pins one per sample). @default the backend's current version when the batch starts */
  version?: ServedVersion;
  /**
   * The requester's first submit (a sample's first token): it waits its window for
   * company even when every requester is waiting. Without it a lone sample that never
   * yields (a backend that computes in this process) runs to its end before the next
   * request is even read, and no two samples ever share a forward. @default false
   */
  first?: boolean;
}

interface Pending {
  x: Float32Array;
  first: boolean;
  rows: number;
  deadline: number;
  arrived: number;
  resolve(r: BatchResult): void;
  reject(err: Error): void;
}

interface Queue {
  key: string;
  features: number;
  version?: ServedVersion;
  items: Pending[];
  rows: number;
  timer?: NodeJS.Timeout;
}

export interface Batcher {
  /**
   * Queue `rows` rows of `features` values each (`x`, row-major); resolves with the
   * output rows for them. Rejects with an HttpError 503 when the queue is full, the
   * deadline passes in the queue or the batcher closes, or with the backend's error
   * when the forward fails.
   */
  submit(x: Float32Array, rows: number, features: number, deadline: number, opts?: SubmitOptions): Promise<BatchResult>;
  /** Look again whether a queue can go (after `expected()` fell). */
  poke(): void;
  /** Rows waiting now. */
  readonly queuedRows: number;
  /** Stop: every waiting request fails with 503; running forwards finish. */
  close(): void;
}

export const DEFAULT_WINDOW_MS = 2;
export const DEFAULT_MAX_BATCH = 64;

/**
 * @example
 * const batcher = createBatcher({ backend, windowMs: 2, maxBatch: 64 });
 * const { output, version } = await batcher.submit(x, rows, backend.model.inputFeatures, Date.now() + 10_000);
 */
export function createBatcher(o: BatcherOptions): Batcher {
  const windowMs = o.windowMs ?? DEFAULT_WINDOW_MS;
  const maxBatch = o.maxBatch ?? DEFAULT_MAX_BATCH;
  const maxInFlight = o.maxInFlight ?? 1;
  const maxQueueRows = o.maxQueueRows ?? 16 * maxBatch;
  if (!(windowMs >= 0)) throw new Error(`windowMs must be >= 0, got ${windowMs}`);
  for (const [name, v] of [['maxBatch', maxBatch], ['maxInFlight', maxInFlight], ['maxQueueRows', maxQueueRows]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be an integer >= 1, got ${v}`);
  }
  const queues = new Map<string, Queue>();
  let queuedRows = 0;
  let queuedRequests = 0;
  let inFlight = 0;
  let closed = false;

  // `idleDispatch`: an idle backend is not kept waiting (predict: no `expected`): a request
  // that finds no forward running goes at once, so batching costs a lone client nothing;
  // requests that arrive while forwards run gather for the next one, up to the window.
  const idle = () => o.idleDispatch === true && inFlight === 0 && o.expected === undefined;
  const isReady = (q: Queue, now: number, allWaiting: boolean) => q.rows >= maxBatch || allWaiting || idle() || now - q.items[0].arrived >= windowMs;

  function pump(): void {
    while (inFlight < maxInFlight && queuedRequests > 0) {
      const now = Date.now();
      const allWaiting = o.expected !== undefined && queuedRequests >= o.expected() && !hasFreshFirst(now);
      let next: Queue | undefined;
      for (const q of queues.values()) {
        if (isReady(q, now, allWaiting) && (!next || q.items[0].arrived < next.items[0].arrived)) next = q;
      }
      if (!next) break;
      run(take(next, now));
    }
    for (const q of queues.values()) arm(q);
  }

  /** Some requester's first submit has waited less than a window. */
  function hasFreshFirst(now: number): boolean {
    for (const q of queues.values()) for (const p of q.items) if (p.first && now - p.arrived < windowMs) return true;
    return false;
  }

  /** A timer for the moment `q`'s oldest request has waited a window (if none is set). */
  function arm(q: Queue): void {
    if (q.timer || q.items.length === 0) return;
    const wait = Math.max(0, q.items[0].arrived + windowMs - Date.now());
    q.timer = setTimeout(() => {
      q.timer = undefined;
      pump();
    }, wait);
  }

  /** Whole requests from the head of `q`, up to `maxBatch` rows (at least one); expired ones fail here. */
  function take(q: Queue, now: number) {
    const items: Pending[] = [];
    let rows = 0;
    while (q.items.length > 0) {
      const head = q.items[0];
      if (head.deadline < now) {
        drop(q, head);
        head.reject(new HttpError(503, 'the request timed out waiting for a batch'));
        continue;
      }
      if (items.length > 0 && rows + head.rows > maxBatch) break;
      drop(q, head);
      items.push(head);
      rows += head.rows;
    }
    if (q.items.length === 0) {
      clearTimeout(q.timer);
      q.timer = undefined;
      queues.delete(q.key);
    }
    return { q, items, rows };
  }

  function drop(q: Queue, p: Pending): void {
    q.items.shift();
    q.rows -= p.rows;
    queuedRows -= p.rows;
    queuedRequests--;
  }

  function run({ q, items, rows }: ReturnType<typeof take>): void {
    if (items.length === 0) return;
    inFlight++;
    const x = new Float32Array(rows * q.features);
    let at = 0;
    for (const p of items) {
      x.set(p.x, at);
      at += p.x.length;
    }
    const deadline = Math.min(...items.map((p) => p.deadline));
    o.onBatch?.(rows, items.length);
    (async () => {
      const version = q.version ?? o.backend.version();
      const y = await o.backend.forward({ shape: [rows, q.features], data: x }, version, deadline);
      if (y.shape[0] !== rows || y.data.length % rows !== 0) throw new Error(`the backend answered ${y.shape[0]} rows for ${rows}`);
      return { y, version };
    })().then(
      ({ y, version }) => {
        const per = y.data.length / rows;
        let r = 0;
        for (const p of items) {
          p.resolve({ output: { shape: [p.rows, ...y.shape.slice(1)], data: y.data.subarray(r * per, (r + p.rows) * per) }, version });
          r += p.rows;
        }
      },
      (err: Error) => {
        for (const p of items) p.reject(err);
      },
    ).finally(() => {
      inFlight--;
      pump();
    });
  }

  return {
    submit(x, rows, features, deadline, opts = {}) {
      if (closed) return Promise.reject(new HttpError(503, 'the server is shutting down'));
      if (x.length !== rows * features) return Promise.reject(new Error(`submit: ${x.length} values are not ${rows} rows of ${features}`));
      if (queuedRows + rows > maxQueueRows) return Promise.reject(new HttpError(503, `overloaded: ${queuedRows} rows are already waiting (at most ${maxQueueRows})`));
      const key = `${opts.version?.id ?? ''}/${features}`;
      let q = queues.get(key);
      if (!q) {
        q = { key, features, version: opts.version, items: [], rows: 0 };
        queues.set(key, q);
      }
      const queue = q;
      return new Promise<BatchResult>((resolve, reject) => {
        queue.items.push({ x, first: opts.first ?? false, rows, deadline, arrived: Date.now(), resolve, reject });
        queue.rows += rows;
        queuedRows += rows;
        queuedRequests++;
        pump();
      });
    },
    poke: pump,
    get queuedRows() {
      return queuedRows;
    },
    close() {
      closed = true;
      for (const q of queues.values()) {
        clearTimeout(q.timer);
        for (const p of q.items) p.reject(new HttpError(503, 'the server is shutting down'));
      }
      queues.clear();
      queuedRows = 0;
      queuedRequests = 0;
    },
  };
}
