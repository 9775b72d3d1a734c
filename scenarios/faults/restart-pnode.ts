/** `restart-pnode`: SIGKILL a PNode and start it again under the same name — a crash and a reboot. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { FaultKind } from './types.js';

export const restartPNode: FaultKind = {
  kind: 'restart-pnode',
  description: 'SIGKILL a PNode, start it again under the same name after durationMs',
  async inject(ctx, fault) {
    const [t] = await ctx.pickPNodes(fault.target);
    const ms = fault.durationMs ?? 500;
    ctx.cluster.expectExit(t);
    ctx.cluster.procs.get(t)!.kill('SIGKILL');
    const at = Date.now();
    await sleep(ms);
    await ctx.cluster.spawnPNode(t);
    return { kind: this.kind, target: t, atStep: fault.atStep, at, healedAt: Date.now(), expectDead: [t], detail: `SIGKILL ${t}, same name back after ${ms} ms` };
  },
};
