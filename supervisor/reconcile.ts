/**
 * Reconcile: the moves that bring ownership in line with the cluster — a pure function
 * of what the supervisor knows, so it is tested without a cluster.
 *
 * 1. Every deployed VNode whose owner is not a live, non-draining PNode, or whose owner
 *    gave up on it (escalated, or refused it), is placed by the strategy — among the
 *    PNodes that accept it: they know its VNode type and are under their `maxVNodes`
 *    (Orleans' placement filters, run before the director). VNodes with the same set of
 *    eligible PNodes are placed together, so in the usual cluster (every PNode knows
 *    every type) the strategy sees the whole model at once and keeps neighbours together.
 *    A VNode does not go back to the PNode that gave up on it, unless that is the only one.
 * 2. Then a bounded rebalance toward each newly joined PNode (`rebalanceMoves` at most),
 *    unless step 1 placed something: placement already saw the newcomers.
 */
import type { MemberView } from '../runtime/protocol.js';
import type { PlacementStrategy } from './placement/types.js';

export interface ReconcileInput {
  /** Live, non-draining PNodes. */
  candidates: MemberView[];
  /** Every deployed VNode (`<deployment>.<index>`), its type and estimated bytes in memory, in deployment/index order. */
  wanted: Array<{ vnode: string; type: string; bytes?: number; group?: string }>;
  /** Owner of each wanted VNode that has one. */
  current: ReadonlyMap<string, string>;
  /** VNode → the PNode that gave up on it (escalated or refused). */
  escalated: ReadonlyMap<string, string>;
  draining: ReadonlySet<string>;
  /** PNodes that joined since the last reconcile. */
  joined: string[];
  placement: PlacementStrategy;
  /** @default 2 */
  rebalanceMoves?: number;
}

export interface Move {
  vnode: string;
  pnode: string;
  reason: 'new' | 'owner dead' | 'drain' | 'escalated' | 'rebalance';
}

export function planMoves(o: ReconcileInput): Move[] {
  const moves: Move[] = [];
  const current = new Map(o.current);
  const typeOf = new Map(o.wanted.map((w) => [w.vnode, w.type]));
  const bytes = new Map(o.wanted.map((w) => [w.vnode, w.bytes ?? 0]));
  const group = new Map(o.wanted.flatMap((w) => (w.group ? [[w.vnode, w.group] as const] : [])));
  const load = new Map<string, number>();
  for (const p of current.values()) load.set(p, (load.get(p) ?? 0) + 1);
  const accepts = (c: MemberView, vnode: string) =>
    c.capacity.types.includes(typeOf.get(vnode)!) && (current.get(vnode) === c.id || (load.get(c.id) ?? 0) < c.capacity.maxVNodes);
  const move = (vnode: string, pnode: string, reason: Move['reason']) => {
    const was = current.get(vnode);
    if (was !== undefined) load.set(was, load.get(was)! - 1);
    load.set(pnode, (load.get(pnode) ?? 0) + 1);
    current.set(vnode, pnode);
    moves.push({ vnode, pnode, reason });
  };
  const ids = new Set(o.candidates.map((c) => c.id));

  const toPlace = o.wanted.map((w) => w.vnode).filter((v) => !ids.has(current.get(v) ?? '') || o.escalated.get(v) === current.get(v));
  // Group by the set of PNodes that accept each VNode (type and room, as of now).
  const groups = new Map<string, { eligible: MemberView[]; vnodes: string[] }>();
  for (const v of toPlace) {
    const eligible = o.candidates.filter((c) => accepts(c, v));
    if (eligible.length === 0) continue; // nobody can host it (yet): it waits, and the next tick tries again
    const key = eligible.map((c) => c.id).join(',');
    const g = groups.get(key) ?? { eligible, vnodes: [] };
    g.vnodes.push(v);
    groups.set(key, g);
  }
  for (const { eligible, vnodes } of groups.values()) {
    const choice = o.placement.place({ toPlace: vnodes, candidates: eligible, current, bytes, ...(group.size ? { groups: group } : {}) });
    for (const v of vnodes) {
      const giver = o.escalated.get(v);
      let p = choice.get(v);
      if (p && p === giver && eligible.length > 1) p = eligible.find((c) => c.id !== giver)?.id;
      const host = eligible.find((c) => c.id === p);
      if (!host || !accepts(host, v)) continue; // full after this tick's earlier moves: next tick
      const was = current.get(v);
      const reason = giver !== undefined ? 'escalated' : was === undefined ? 'new' : o.draining.has(was) ? 'drain' : 'owner dead';
      move(v, p!, reason);
    }
  }
  if (groups.size) return moves;

  for (const newcomer of o.joined) {
    const target = o.candidates.find((c) => c.id === newcomer);
    if (!target) continue;
    for (let n = 0; n < (o.rebalanceMoves ?? 2); n++) {
      const counts = o.candidates.map((c) => [c.id, load.get(c.id) ?? 0] as const);
      const [busiest, most] = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0];
      if (most - (load.get(newcomer) ?? 0) <= 1) break;
      const victim = [...current].filter(([v, p]) => p === busiest && accepts(target, v)).map(([v]) => v).sort().pop();
      if (!victim) break;
      move(victim, newcomer, 'rebalance');
    }
  }
  return moves;
}
