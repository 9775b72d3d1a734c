/**
 * Process plumbing shared by the long-running commands (pnode, supervisor, up):
 * connecting to NATS, clean shutdown on signals, and dying with the parent that
 * spawned us (a cluster launched by `dcnr up` or `dcnr train --pnodes N` must not
 * leave orphans behind when its launcher is SIGKILLed).
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';

/** Environment variable a launcher sets to its own pid. */
export const PARENT_ENV = 'DCNR_PARENT_PID';

/** `DCNR_NATS_ASYNC_TRACES=1` brings nats.js's async stack traces back (to find where a request timed out). */
export const noAsyncTraces = (): boolean => process.env.DCNR_NATS_ASYNC_TRACES !== '1';

/**
 * Connect with endless reconnects (a restarted nats-server must not kill a PNode), and
 * without an Error (stack capture) made ahead of every request: measured, 5% of a
 * training process's CPU went to building them (`noAsyncTraces`).
 * @throws Error naming the URL when the first connection fails.
 */
export async function connectNats(url: string, name: string): Promise<NatsConnection> {
  try {
    return await connect({ servers: url.split(','), name, maxReconnectAttempts: -1, reconnectTimeWait: 250, noAsyncTraces: noAsyncTraces() });
  } catch (err) {
    throw new Error(`cannot connect to NATS at ${url}: ${(err as Error).message}`);
  }
}

/** Run `stop` on SIGINT/SIGTERM (once), then exit; also exit when the launching parent dies. */
export function onShutdown(stop: () => Promise<void>): void {
  let stopping = false;
  const shutdown = (code: number) => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(code), 5000);
    force.unref();
    void stop()
      .catch(() => {})
      .finally(() => process.exit(code));
  };
  process.on('SIGINT', () => shutdown(130));
  process.on('SIGTERM', () => shutdown(143));
  const parent = Number(process.env[PARENT_ENV]);
  if (parent > 0) {
    setInterval(() => {
      if (process.ppid !== parent) shutdown(1);
    }, 500).unref();
  }
}
