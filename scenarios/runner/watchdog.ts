/**
 * The runner's watchdog: a faulted run that cannot go on is stopped with a reason, never
 * left hanging — no live PNode for 10 s, or no training progress for two minutes plus
 * the faults' own time.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { readView } from '../../cluster/view.js';

/** No live PNode for this long (after a fault) = training cannot go on: stop and say so. */
const NO_PNODE_LIMIT_MS = 10_000;

export interface Watchdog {
  readonly signal: AbortSignal;
  /** Training made progress now. */
  progressed(): void;
  stop(): void;
}

export function startWatchdog(nc: NatsConnection, faultBudgetMs: number): Watchdog {
  const abort = new AbortController();
  let lastProgress = Date.now();
  let noPNodeSince: number | undefined;
  const timer = setInterval(() => {
    void (async () => {
      const view = await readView(nc).catch(() => null);
      if (view && Date.now() - view.at < 5000) {
        if (view.pnodes.some((p) => p.alive)) noPNodeSince = undefined;
        else noPNodeSince ??= Date.now();
      }
      if (noPNodeSince !== undefined && Date.now() - noPNodeSince > NO_PNODE_LIMIT_MS) {
        abort.abort(new Error(`no PNode alive for ${NO_PNODE_LIMIT_MS / 1000} s after the faults: training cannot go on`));
      } else if (Date.now() - lastProgress > 120_000 + faultBudgetMs) {
        abort.abort(new Error(`training made no progress for ${Math.round((Date.now() - lastProgress) / 1000)} s`));
      }
    })();
  }, 500);
  return {
    signal: abort.signal,
    progressed: () => void (lastProgress = Date.now()),
    stop: () => clearInterval(timer),
  };
}
