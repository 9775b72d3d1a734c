/**
 * The supervisor's view (`SupervisorKey.view` in the members bucket): every PNode as
 * the supervisor sees it. `dcnr status`, the dashboard and the tests read it, and judge
 * the supervisor alive by its freshness, so it is written when it changes and at least
 * once a second.
 */
import type { KV } from '@nats-io/kv';
import { SupervisorKey, type MemberView, type SupervisorView } from '../runtime/protocol.js';
import type { Member } from './membership.js';

/** A PNode's smoothed risk and its signals' ramps (supervisor/health.ts), if known. */
export type RiskOf = (pnode: string) => { risk: number; signals: Record<string, number> } | undefined;

/** What spot re-execution says of PNodes (supervisor/audit.ts). */
export interface AuditOf {
  reputation(pnode: string): { verified: number; failed: number } | undefined;
  readonly quarantined: ReadonlySet<string>;
}

export function memberView(m: Member, draining: ReadonlySet<string>, riskOf?: RiskOf, audits?: AuditOf): MemberView {
  const r = riskOf?.(m.hb.pnode);
  const rep = audits?.reputation(m.hb.pnode);
  return {
    id: m.hb.pnode,
    pid: m.hb.pid,
    alive: m.alive,
    draining: draining.has(m.hb.pnode),
    capacity: m.hb.capacity,
    vnodes: m.hb.vnodes,
    lastHeartbeat: m.lastHeartbeat,
    counters: m.hb.counters,
    ...(r ? { risk: r.risk, riskSignals: r.signals } : {}),
    ...(rep ? { reputation: { verified: rep.verified, failed: rep.failed } } : {}),
    ...(audits?.quarantined.has(m.hb.pnode) ? { quarantined: true } : {}),
  };
}

export function buildView(members: Iterable<Member>, draining: ReadonlySet<string>, leader?: { name: string; term: number }, riskOf?: RiskOf, audits?: AuditOf): SupervisorView {
  return {
    at: Date.now(),
    supervisorPid: process.pid,
    ...(leader ? { leader } : {}),
    pnodes: [...members].map((m) => memberView(m, draining, riskOf, audits)).sort((a, b) => a.id.localeCompare(b.id)),
  };
}

/** Writes the view when it changed, or when the last write is a second old. */
export function viewPublisher(kv: KV, view: () => SupervisorView): () => Promise<void> {
  let last = '';
  let lastWrite = 0;
  return async () => {
    const v = view();
    const text = JSON.stringify({ ...v, at: 0 });
    if (text === last && Date.now() - lastWrite < 1000) return;
    last = text;
    lastWrite = Date.now();
    await kv.put(SupervisorKey.view, JSON.stringify(v));
  };
}
