/**
 * What the actors of a PNode do, told to the cluster: each host event becomes a
 * ClusterEvent on `dcnr.events.<pnode>` (what the supervisor, the dashboard and the
 * scenario runner read), a log line, and a heartbeat counter.
 */
import type { HostEvent } from '../actor-host.js';
import type { ClusterEvent, Heartbeat } from '../protocol.js';

/** `<deployment>.<index>` of a VNode id `<deployment>.<index>.<type>`. */
const keyOf = (vnodeId: string) => vnodeId.split('.').slice(0, 2).join('.');

export function reportHostEvents(pnode: string, counters: Heartbeat['counters'], emit: (e: ClusterEvent) => void, log: (line: string) => void): (e: HostEvent) => void {
  return (e) => {
    const at = Date.now();
    switch (e.type) {
      case 'activated':
        counters.activations++;
        return emit({ type: 'activated', vnode: keyOf(e.vnode), pnode, epoch: e.epoch, at, ms: e.ms, replayed: e.replayed, replayMs: e.replayMs, ...(e.restoredRevision !== undefined ? { restoredRevision: e.restoredRevision } : {}) });
      case 'fenced':
        if (e.cause === 'write') counters.fencedWrites++;
        return emit({ type: 'fenced', vnode: keyOf(e.vnode), pnode, epoch: e.epoch, at, cause: e.cause });
      case 'rejected':
        counters.rejected++;
        return emit({ type: 'rejected', vnode: keyOf(e.vnode), pnode, error: e.error, at });
      case 'restarting':
        counters.restarts++;
        return log(`${e.vnode} failed (attempt ${e.attempt}), restarting in ${e.delayMs} ms: ${e.error.split('\n')[0]}`);
      case 'misdelivered':
        return log(`${e.vnode}: the server delivered a message of ${e.subject} through its ${e.port} port's consumer; left unacked (not ours to settle)`);
      case 'passivated':
        return emit({ type: 'passivated', vnode: keyOf(e.vnode), pnode, at });
      case 'escalated':
        counters.escalations++;
        return emit({ type: 'escalated', vnode: e.vnode, pnode, error: e.error.split('\n')[0], at });
    }
  };
}
