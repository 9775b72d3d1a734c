/**
 * `dcnr serve`'s library: an HTTP server (http.ts) in front of a `ServeBackend`
 * (backend.ts) — the parameters in this process (local-backend.ts) or a cluster's —
 * with micro-batching (batcher.ts) and Prometheus metrics (metrics.ts); a load driver
 * for benchmarks and tests on autocannon (load.ts). docs/serving.md describes the API.
 */
export { startServer } from './http.js';
export type { ServerOptions, ServeServer } from './http.js';
export type { ServeBackend, ServedVersion } from './backend.js';
export { createLocalBackend, openLocalBackend } from './local-backend.js';
export type { LocalBackend, LocalBackendOptions } from './local-backend.js';
export { createBatcher, DEFAULT_MAX_BATCH, DEFAULT_WINDOW_MS } from './batcher.js';
export type { Batcher, BatcherOptions, BatchResult } from './batcher.js';
export { HttpError } from './errors.js';
export { DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_TOKENS_LIMIT, MAX_PROMPT_CHARS } from './requests.js';
export { LOAD_GENERATOR, runLoad } from './load.js';
export type { LoadOptions, LoadResult } from './load.js';
