/**
 * `restart-pnode`: SIGKILL a PNode and start it again under the same name — a crash and a
 * reboot. Back within the detection time, it is never declared dead: the new process
 * finds its ownership records and re-activates its own VNodes from KV. Back later, the
 * supervisor has moved them already.
 */
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
    const declaredDead = ms > ctx.detectMs * 1.5;
    return {
      kind: this.kind,
      target: t,
      atStep: fault.atStep,
      at,
      healedAt: Date.now(),
      expectDead: declaredDead ? [t] : [],
      detail: `SIGKILL ${t}, same name back after ${ms} ms${declaredDead ? '' : ' (within detection: it resumes its own VNodes)'}`,
    };
  },
};
