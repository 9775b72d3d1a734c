/**
 * `slow-pnode`: one PNode waits `count` ms (default 20) before every message it handles,
 * for `durationMs` — an overloaded or throttled machine. Its heartbeats go on, so it is
 * not declared dead: training slows down and stays bit-identical.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { setFaultControl } from './fault-control.js';
import type { FaultKind } from './types.js';

export const slowPNode: FaultKind = {
  kind: 'slow-pnode',
  description: 'a per-message delay on one PNode for durationMs (heartbeats continue)',
  needs: { faultControl: true },
  async inject(ctx, fault) {
    const [t] = await ctx.pickPNodes(fault.target);
    const delay = fault.count ?? 20;
    const ms = fault.durationMs ?? 3000;
    const set = (messageDelayMs: number) => setFaultControl(ctx.nc, 'slow-pnode', t, { messageDelayMs });
    await set(delay);
    const at = Date.now();
    await sleep(ms);
    await set(0);
    return { kind: this.kind, target: t, atStep: fault.atStep, at, healedAt: Date.now(), expectDead: [], detail: `${delay} ms before every message on ${t} for ${ms} ms` };
  },
};
