/**
 * Fault injection (scenarios only): a PNode made slow or sick on request on
 * `Subject.faultControl(<pnode>)`. Off unless the PNode was started with it, and then
 * only through a subject a launcher knows: strangers must not slow PNodes.
 *
 * Three knobs, each real rather than reported: a delay before every message it handles
 * (`messageDelayMs`: an overloaded machine), kernels that take `kernelSlowdown` times as
 * long (the extra time is spent busy, on the event loop, as a throttled CPU's would be),
 * and an event loop held busy `loopBlockMs` in every 500 ms (a machine swapping, or a
 * noisy neighbour). A fourth makes it a liar: `corruptGradients` scales every gradient
 * it sends, which it records and signs as if it were right (byzantine-pnode). The PNode's own health sampler (health.ts) measures what they do like
 * anything else that slows it.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Kernels } from '../kernels/types.js';
import { Subject, type FaultControlReply } from '../protocol.js';
import { parseFaultControlRequest } from '../records.js';

export interface FaultControl {
  /** The current per-message delay, ms. */
  delayMs(): number;
  /** `kernels` with the current slowdown applied to every call. */
  slowed(kernels: Kernels): Kernels;
  /** The factor its gradients are scaled by (1: honest). */
  corruption(): number;
  stop(): void;
}

const LOOP_PERIOD_MS = 500;

/** Spin (hold the thread) for `ms`. */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/** Answer fault-control requests; the returned handle applies what they set. */
export function serveFaultControl(nc: NatsConnection, pnode: string, log: (line: string) => void): FaultControl {
  const now: Omit<FaultControlReply, 'ok' | 'pnode' | 'error'> = { messageDelayMs: 0, kernelSlowdown: 1, loopBlockMs: 0, corruptGradients: 1 };
  const blocker = setInterval(() => now.loopBlockMs > 0 && busy(now.loopBlockMs), LOOP_PERIOD_MS);
  blocker.unref();
  const sub: Subscription = nc.subscribe(Subject.faultControl(pnode), {
    callback: (_err, m) => {
      const req = parseFaultControlRequest(m.data);
      let reply: FaultControlReply;
      if (req.ok) {
        Object.assign(now, Object.fromEntries(Object.entries(req.value).filter(([, v]) => v !== undefined)));
        log(`fault injection: ${now.messageDelayMs} ms before every message, kernels ×${now.kernelSlowdown}, event loop busy ${now.loopBlockMs} ms per ${LOOP_PERIOD_MS} ms, gradients ×${now.corruptGradients}`);
        reply = { ok: true, pnode, ...now };
      } else {
        reply = { ok: false, pnode, ...now, error: req.error };
      }
      m.respond(JSON.stringify(reply));
    },
  });
  return {
    delayMs: () => now.messageDelayMs,
    corruption: () => now.corruptGradients,
    slowed(kernels) {
      return new Proxy(kernels, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver);
          if (typeof value !== 'function' || prop === 'dispose') return value;
          // As a slower machine would: a backend that computes in the call (OpenBLAS, JS)
          // is slowed in the call, an asynchronous one when its result comes.
          return async (...args: unknown[]) => {
            const slowdown = now.kernelSlowdown;
            const t = performance.now();
            const pending = value.apply(target, args);
            const inCall = performance.now() - t;
            if (slowdown > 1) busy(inCall * (slowdown - 1));
            const t2 = performance.now();
            const out = await pending;
            if (slowdown > 1 && inCall < 0.005) busy((performance.now() - t2) * (slowdown - 1));
            return out;
          };
        },
      });
    },
    stop() {
      clearInterval(blocker);
      sub.unsubscribe();
    },
  };
}
