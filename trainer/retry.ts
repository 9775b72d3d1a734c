/** Retrying idempotent NATS calls through an outage (a restarted server, a lost leader). */
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Run `fn` until it succeeds, retrying errors of a NATS outage (timeouts, no responders,
 * a connection in reconnect) for up to two minutes; other errors and an abort end it.
 * Only for idempotent calls: a re-sent message is de-duplicated by its message id.
 */
export async function retrying<T>(signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 120_000;
  for (let attempt = 0; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await fn();
    } catch (err) {
      const transient = /timeout|no responders|503|disconnect|reconnect|CONNECTION_REFUSED/i.test(String((err as Error)?.message ?? err) + String((err as Error)?.name ?? ''));
      if (!transient || Date.now() > deadline) throw err;
      await sleep(Math.min(1000, 50 * 2 ** attempt));
    }
  }
}
