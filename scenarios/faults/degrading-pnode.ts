/**
 * `degrading-pnode`: a PNode that gets sick before it dies. Over `durationMs` (default
 * 8000) its kernels get progressively slower (up to `count`×, default 10), its event
 * loop is held busy longer and longer (up to 300 ms in every 500) and every message
 * waits a little (up to 10 ms); then it is SIGKILLed. Nothing about the schedule looks
 * at the supervisor: the PNode dies at its time whatever the supervisor did.
 *
 * The supervisor is expected to see it coming (supervisor/health.ts) and drain it: the
 * report says how many VNodes it still owned when it died (goal 0) and the lead time —
 * from the moment the last of its VNodes ran elsewhere to its death — and how many moved
 * VNodes did not start from the very checkpoint it released them with (goal 0: a drain
 * is a handover, runtime/pnode/ownership.ts: nothing it applied is applied again).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { readView } from '../../cluster/view.js';
import { collectStatus } from '../../cluster/status.js';
import { subscribeClusterEvents } from '../../runtime/cluster-state.js';
import type { ClusterEvent, FaultControlRequest } from '../../runtime/protocol.js';
import { setFaultControl } from './fault-control.js';
import type { FaultKind } from './types.js';

const RAMP_STEPS = 16;
const MAX_LOOP_BLOCK_MS = 300;
const MAX_MESSAGE_DELAY_MS = 10;

export const degradingPNode: FaultKind = {
  kind: 'degrading-pnode',
  description: 'a PNode whose kernels and event loop get slower and slower over durationMs, then SIGKILL',
  needs: { faultControl: true },
  async inject(ctx, fault) {
    const [t] = await ctx.pickPNodes(fault.target);
    const worst = fault.count ?? 10;
    const ms = fault.durationMs ?? 8000;
    const ownedBy = async (pnode: string) => (await collectStatus(ctx.nc)).vnodes.filter((v) => v.pnode === pnode).map((v) => v.id);
    const before = await ownedBy(t);
    const seen: Array<ClusterEvent & { received: number }> = [];
    const sub = subscribeClusterEvents(ctx.nc, (e) => seen.push({ ...e, received: Date.now() }));
    const set = (req: FaultControlRequest) => setFaultControl(ctx.nc, 'degrading-pnode', t, req);
    /** Per PNode, the highest risk the supervisor's view gave it during the ramp (and that moment's top signal). */
    const peak = new Map<string, { risk: number; top: string }>();
    const sampleRisk = async () => {
      for (const p of (await readView(ctx.nc).catch(() => null))?.pnodes ?? []) {
        if (p.risk === undefined || p.risk <= (peak.get(p.id)?.risk ?? -1)) continue;
        const [top] = Object.entries(p.riskSignals ?? {}).sort((x, y) => y[1] - x[1]);
        peak.set(p.id, { risk: p.risk, top: top && top[1] > 0 ? `${top[0]} ${top[1]}` : '-' });
      }
    };
    const at = Date.now();
    for (let i = 1; i <= RAMP_STEPS; i++) {
      const f = i / RAMP_STEPS;
      // A PNode that is already hard to reach is past answering: the ramp goes on without it.
      await set({ kernelSlowdown: 1 + (worst - 1) * f, loopBlockMs: Math.round(MAX_LOOP_BLOCK_MS * f), messageDelayMs: Math.round(MAX_MESSAGE_DELAY_MS * f) }).catch((err) => ctx.log(String(err)));
      await sampleRisk();
      await sleep(Math.max(0, at + (ms * i) / RAMP_STEPS - Date.now()));
    }
    const stillOwned = await ownedBy(t);
    ctx.cluster.expectExit(t);
    ctx.cluster.procs.get(t)!.kill('SIGKILL');
    const diedAt = Date.now();
    sub.unsubscribe();

    const atRisk = seen.find((e) => e.type === 'at-risk' && e.pnode === t);
    const moved = new Set(seen.flatMap((e) => (e.type === 'assigned' && e.from === t ? [e.vnode] : [])));
    const runningElsewhere = seen.filter((e) => e.type === 'activated' && moved.has(e.vnode) && e.pnode !== t);
    const lastActivation = Math.max(...runningElsewhere.map((e) => e.received));
    // A handover lost nothing when the new owner restored the very checkpoint the old one released with.
    const releasedAt = new Map(seen.flatMap((e) => (e.type === 'released' && e.pnode === t && e.revision !== undefined ? [[e.vnode, e.revision] as const] : [])));
    const handedOver = runningElsewhere.filter((e) => e.type === 'activated' && e.restoredRevision !== undefined && e.restoredRevision === releasedAt.get(e.vnode)).length;
    const lostOnMove = moved.size - handedOver;
    const leadMs = stillOwned.length === 0 && before.length > 0 && runningElsewhere.length > 0 ? diedAt - lastActivation : undefined;
    const detail =
      `${t} degraded over ${ms} ms (kernels up to ×${worst}, event loop busy up to ${MAX_LOOP_BLOCK_MS} ms per 500 ms), then SIGKILL; ` +
      (atRisk && atRisk.type === 'at-risk' ? `judged at risk ${atRisk.risk} after ${atRisk.received - at} ms; ` : 'never judged at risk; ') +
      `peak risk ${[...peak].sort().map(([p, r]) => `${p} ${r.risk} (${r.top})`).join(', ') || 'unknown'}; ` +
      `owned ${before.length} VNodes before, ${stillOwned.length} at its death` +
      (leadMs !== undefined ? `; the last moved VNode ran elsewhere ${leadMs} ms before it died; ${handedOver} of ${moved.size} started from the checkpoint it released with` : '');
    ctx.log(`degrading-pnode: ${detail}`);
    return { kind: this.kind, target: t, atStep: fault.atStep, at, expectDead: [t], stillOwned: stillOwned.length, ...(leadMs !== undefined ? { leadMs } : {}), lostOnMove, detail };
  },
};
