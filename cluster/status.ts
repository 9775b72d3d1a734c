/** The status of a cluster: PNodes, their VNodes, health, epochs (`dcnr status`, the dashboard's /api/status). */
import type { NatsConnection } from '@nats-io/transport-node';
import { openBuckets } from '../runtime/cluster-state.js';
import { parseEntry, parseOwnershipRecord } from '../runtime/records.js';
import { readView } from './view.js';

export interface StatusReport {
  /** The leading supervisor (its name and lease term, when it has a lease), as its view says. */
  supervisor: { pid: number; viewAgeMs: number; name?: string; term?: number } | null;
  /**
   * `risk`: the supervisor's smoothed risk score in [0, 1] (supervisor/health.ts) and
   * `riskSignals` the ramps it came from; absent for a PNode not heard since the leader started.
   */
  /** `reputation`: spot re-execution of its work (supervisor/audit.ts): segments verified and failed; `quarantined`: caught lying, it gets no VNodes. */
  pnodes: Array<{ id: string; pid: number; alive: boolean; draining: boolean; kernelMode: string; gflops: number; risk?: number; riskSignals?: Record<string, number>; reputation?: { verified: number; failed: number }; quarantined?: boolean; vnodes: string[]; fencedWrites: number }>;
  vnodes: Array<{ id: string; pnode: string; epoch: number }>;
}

/** The status object (also served by the dashboard as /api/status). */
export async function collectStatus(nc: NatsConnection): Promise<StatusReport> {
  const view = await readView(nc);
  const { owners } = await openBuckets(nc);
  const vnodes: StatusReport['vnodes'] = [];
  for await (const key of await owners.keys()) {
    const r = parseEntry(await owners.get(key), parseOwnershipRecord);
    if (r) vnodes.push({ id: key, pnode: r.pnode, epoch: r.epoch });
  }
  vnodes.sort((a, b) => a.id.localeCompare(b.id, undefined, { numeric: true }));
  return {
    supervisor: view ? { pid: view.supervisorPid, viewAgeMs: Date.now() - view.at, ...(view.leader ? { name: view.leader.name, term: view.leader.term } : {}) } : null,
    pnodes: (view?.pnodes ?? []).map((p) => ({
      id: p.id,
      pid: p.pid,
      alive: p.alive && Date.now() - view!.at < 5000,
      draining: p.draining,
      kernelMode: p.capacity.kernelMode,
      gflops: p.capacity.gflops,
      ...(p.risk !== undefined ? { risk: p.risk, riskSignals: p.riskSignals ?? {} } : {}),
      ...(p.reputation ? { reputation: p.reputation } : {}),
      ...(p.quarantined ? { quarantined: true } : {}),
      vnodes: p.vnodes,
      fencedWrites: p.counters.fencedWrites,
    })),
    vnodes,
  };
}

