/**
 * Recoveries: a dead PNode's VNodes, from its death until every one of them is
 * activated elsewhere. Then one `recovered` event says how long detection took (death
 * declared − last heartbeat) and how long resumption took (last re-activation − death
 * declared — a VNode counts as activated once it has replayed its backlog since its
 * checkpoint): the figures scenarios and `dcnr bench` report.
 */
import type { ClusterEvent } from '../runtime/protocol.js';
import { telemetryMetrics } from '../runtime/telemetry.js';

interface PendingRecovery {
  pnode: string;
  declaredAt: number;
  lastHeartbeat: number;
  waiting: Set<string>;
  vnodes: string[];
  lastActivation: number;
  replayed: number;
}

export interface Recoveries {
  /** `pnode` was declared dead at `declaredAt` while owning `vnodes`. */
  died(pnode: string, declaredAt: number, lastHeartbeat: number, vnodes: string[]): void;
  /** `vnode` runs again somewhere, caught up after replaying `replayed` messages. */
  activated(vnode: string, at: number, replayed?: number): void;
  /** Announce every recovery that is complete. */
  settle(emit: (e: ClusterEvent) => void): void;
}

export function trackRecoveries(): Recoveries {
  const pending: PendingRecovery[] = [];
  return {
    died(pnode, declaredAt, lastHeartbeat, vnodes) {
      // Owning nothing (drained before it died): recovered at once, with nothing to move.
      pending.push({ pnode, declaredAt, lastHeartbeat, waiting: new Set(vnodes), vnodes, lastActivation: declaredAt, replayed: 0 });
    },
    activated(vnode, at, replayed = 0) {
      for (const r of pending) {
        if (!r.waiting.delete(vnode)) continue;
        r.lastActivation = Math.max(r.lastActivation, at);
        r.replayed += replayed;
      }
    },
    settle(emit) {
      for (let i = pending.length - 1; i >= 0; i--) {
        const r = pending[i];
        if (r.waiting.size > 0) continue;
        pending.splice(i, 1);
        const detectMs = r.declaredAt - r.lastHeartbeat;
        const resumeMs = r.lastActivation - r.declaredAt;
        emit({ type: 'recovered', pnode: r.pnode, vnodes: r.vnodes, detectMs, resumeMs, replayed: r.replayed, at: Date.now() });
        telemetryMetrics().detectMs.record(detectMs);
        telemetryMetrics().resumeMs.record(resumeMs);
      }
    },
  };
}
