/**
 * Fault injection (scenarios only): a delay before every message a PNode handles, set
 * by request on `Subject.faultControl(<pnode>)`. Off unless the PNode was started with
 * it, and then only through a subject a launcher knows: strangers must not slow PNodes.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { Subject, type FaultControlReply } from '../protocol.js';
import { parseFaultControlRequest } from '../records.js';

/** Answer fault-control requests; `delay` holds the current per-message delay. */
export function serveFaultControl(nc: NatsConnection, pnode: string, log: (line: string) => void): { delayMs(): number; sub: Subscription } {
  let messageDelayMs = 0;
  const sub = nc.subscribe(Subject.faultControl(pnode), {
    callback: (_err, m) => {
      const req = parseFaultControlRequest(m.data);
      let reply: FaultControlReply;
      if (req.ok) {
        messageDelayMs = req.value.messageDelayMs;
        log(`fault injection: ${messageDelayMs} ms before every message`);
        reply = { ok: true, pnode, messageDelayMs };
      } else {
        reply = { ok: false, pnode, messageDelayMs, error: req.error };
      }
      m.respond(JSON.stringify(reply));
    },
  });
  return { delayMs: () => messageDelayMs, sub };
}
