/**
 * `partition`: a PNode cut off from NATS (its TCP proxy resets every connection) for
 * `durationMs`, longer than detection, while its process keeps running. It is declared
 * dead and its VNodes move; when the partition heals, whatever it still tries to write
 * must be fenced, and it must drop the VNodes it lost.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { FaultKind } from './types.js';

export const partition: FaultKind = {
  kind: 'partition',
  description: 'cut a PNode off from NATS (process keeps running) for durationMs, then heal',
  needs: { proxy: true },
  async inject(ctx, fault) {
    const [t] = await ctx.pickPNodes(fault.target);
    const proxy = ctx.cluster.proxies.get(t);
    if (!proxy) throw new Error(`partition: ${t} has no proxy`);
    const ms = fault.durationMs ?? ctx.detectMs * 4;
    proxy.cut();
    const at = Date.now();
    await sleep(ms);
    proxy.heal();
    return { kind: this.kind, target: t, atStep: fault.atStep, at, healedAt: Date.now(), expectDead: [t], detail: `${t} cut off from NATS for ${ms} ms` };
  },
};
