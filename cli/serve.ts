/**
 * `dcnr serve --deployment NAME [--nats URL | --store DIR] [--host H] [--port P] [--version latest|STEP]`:
 * HTTP inference through the deployment's VNodes (docs/serving.md).
 *
 * Where the VNodes answer from: a deployment the cluster hosts is answered by the
 * PNodes that own its VNodes (the supervisor's placement; they move on failure). One
 * nobody else hosts — a finished run's store (`--store`, a private nats-server started
 * on it), or a `--pnodes 0` run's deployment — is answered by inference responders in
 * this process, the same code a PNode runs, still one NATS hop per VNode.
 */
import '../actors/index.js';
import { openDeployment, UsageError, type OpenedDeployment } from '../cluster/open-deployment.js';
import { createKernels } from '../runtime/kernels/index.js';
import { serveInference, type InferenceResponder } from '../runtime/pnode/inference.js';
import { startServer } from '../serve/index.js';
import { vnodeBackend } from '../serve/vnode-backend.js';
import { fail } from './output.js';

/** Batches in flight through the VNodes at once (serve/http.ts `maxInFlight`). */
export const SERVE_IN_FLIGHT = 4;

export interface ServeCliOptions {
  deployment: string;
  nats?: string;
  store?: string;
  host: string;
  port: number;
  version: string;
  windowMs?: number;
  maxBatch?: number;
  /** Seconds to wait for a first served version (a run still before its first). */
  wait: number;
}

export async function serveCommand(opts: ServeCliOptions): Promise<void> {
  const version = opts.version === 'latest' ? 'latest' : Number(opts.version);
  if (version !== 'latest' && (!Number.isSafeInteger(version) || version < 1)) fail(`--version must be latest or a version's step (a positive integer), got ${JSON.stringify(opts.version)}`);
  let opened: OpenedDeployment | undefined;
  let responder: InferenceResponder | undefined;
  let close: (() => Promise<void>) | undefined;
  let error: { message: string; code: number } | undefined;
  try {
    opened = await openDeployment({ ...opts, client: 'dcnr-serve', hint: 'train first: dcnr train --model mnist-mlp' });
    const { nc, record, model, store } = opened;
    const log = (line: string) => process.stderr.write(`dcnr serve: ${line}\n`);
    if (opened.fromStore || record.hostedBy === 'local') {
      responder = serveInference({ nc, store, kernels: await createKernels(), log });
      for (const v of model.vnodes) responder.attach({ model, seed: record.seed, generation: record.generation }, v.index);
      log(`${model.vnodes.length} VNodes answered in this process (no PNode hosts ${opts.deployment})`);
    }
    const backend = await vnodeBackend({ nc, store, model, generation: record.generation, version, waitForVersionMs: opts.wait * 1000, log });
    // Hops of several batches interleave on the PNodes: a few forwards in flight keep them busy.
    const http = await startServer({ backend, host: opts.host, port: opts.port, windowMs: opts.windowMs, maxBatch: opts.maxBatch, maxInFlight: SERVE_IN_FLIGHT, idleDispatch: true });
    close = async () => {
      await http.close();
      await backend.close();
    };
    const v = backend.version();
    log(`${opts.deployment} version ${v.id} (paramsHash ${v.paramsHash.slice(0, 16)}…${version === 'latest' ? ', following the latest' : ', pinned'}) on ${http.url}`);
    process.stdout.write(`${http.url}\n`);
    await new Promise<void>((done) => {
      process.once('SIGINT', done);
      process.once('SIGTERM', done);
    });
    log('stopping');
  } catch (err) {
    error = { message: (err as Error).message, code: err instanceof UsageError ? 2 : 1 };
  } finally {
    await close?.().catch(() => {});
    responder?.stop();
    await opened?.close();
  }
  if (error) fail(error.message, error.code);
}
