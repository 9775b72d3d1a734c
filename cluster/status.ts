/** The status of a cluster: PNodes, their VNodes, health, epochs (`dcnr status`, the dashboard's /api/status). */
import type { NatsConnection } from '@nats-io/transport-node';
import { openBuckets, type DeploymentRecord } from '../runtime/cluster-state.js';
import { deployedVNodes } from '../runtime/federated/federation.js';
import { wireInputs } from '../runtime/model.js';
import { parseDeploymentRecord, parseEntry, parseOwnershipRecord } from '../runtime/records.js';
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
  /**
   * Every owned VNode; with its deployment's record at hand, its `type` and the graph:
   * `inputs`, the indices of the VNodes it reads (-1: the dataset; a federated replica's
   * in its own replica), or null for a federated aggregator (it takes every replica's
   * copy of its layer in rounds: docs/federated.md).
   */
  vnodes: Array<{ id: string; pnode: string; epoch: number; type?: string; inputs?: number[] | null }>;
}

/** Type and inputs of each VNode a deployment record deploys, by index (empty when its graph does not wire). */
function graphOf(r: DeploymentRecord): Map<number, { type: string; inputs: number[] | null }> {
  const out = new Map<number, { type: string; inputs: number[] | null }>();
  let wired: number[][];
  try {
    wired = wireInputs(r.spec);
  } catch {
    return out; // a record whose graph does not wire was refused when deployed
  }
  const N = r.spec.vnodes.length;
  for (const v of deployedVNodes(r.spec, r.shapes)) {
    const base = v.group === 'agg' ? undefined : wired[v.index % N];
    const offset = v.index - (v.index % N);
    out.set(v.index, { type: v.type, inputs: base ? base.map((i) => (i < 0 ? i : i + offset)) : null });
  }
  return out;
}

/** The status object (also served by the dashboard as /api/status). */
export async function collectStatus(nc: NatsConnection): Promise<StatusReport> {
  const view = await readView(nc);
  const { owners, deployments } = await openBuckets(nc);
  const graphs = new Map<string, Map<number, { type: string; inputs: number[] | null }>>();
  for await (const key of await deployments.keys()) {
    const r = parseEntry(await deployments.get(key), parseDeploymentRecord);
    if (r) graphs.set(r.spec.name, graphOf(r));
  }
  const vnodes: StatusReport['vnodes'] = [];
  for await (const key of await owners.keys()) {
    const r = parseEntry(await owners.get(key), parseOwnershipRecord);
    if (!r) continue;
    const at = key.lastIndexOf('.');
    const g = graphs.get(key.slice(0, at))?.get(Number(key.slice(at + 1)));
    vnodes.push({ id: key, pnode: r.pnode, epoch: r.epoch, ...(g ? { type: g.type, inputs: g.inputs } : {}) });
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

