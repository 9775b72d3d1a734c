/**
 * Recoveries: a dead PNode's VNodes, from its death until every one of them is
 * activated elsewhere. Then one `recovered` event says how long detection took (death
 * declared − last heartbeat) and how long resumption took (last re-activation − death
 * declared): the figures scenarios and `dcnr bench` report.
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
}

export interface Recoveries {
  /** `pnode` was declared dead at `declaredAt` while owning `vnodes`. */
  died(pnode: string, declaredAt: number, lastHeartbeat: number, vnodes: string[]): void;
  /** `vnode` runs again somewhere. */
  activated(vnode: string, at: number): void;
  /** Announce every recovery that is complete. */
  settle(emit: (e: ClusterEvent) => void): void;
}

export function trackRecoveries(): Recoveries {
  const pending: PendingRecovery[] = [];
  return {
    died(pnode, declaredAt, lastHeartbeat, vnodes) {
      if (vnodes.length) pending.push({ pnode, declaredAt, lastHeartbeat, waiting: new Set(vnodes), vnodes, lastActivation: declaredAt });
    },
    activated(vnode, at) {
      for (const r of pending) if (r.waiting.delete(vnode)) r.lastActivation = Math.max(r.lastActivation, at);
    },
    settle(emit) {
      for (let i = pending.length - 1; i >= 0; i--) {
        const r = pending[i];
        if (r.waiting.size > 0) continue;
        pending.splice(i, 1);
        const detectMs = r.declaredAt - r.lastHeartbeat;
        const resumeMs = r.lastActivation - r.declaredAt;
        emit({ type: 'recovered', pnode: r.pnode, vnodes: r.vnodes, detectMs, resumeMs, at: Date.now() });
        telemetryMetrics().detectMs.record(detectMs);
        telemetryMetrics().resumeMs.record(resumeMs);
      }
    },
  };
}
