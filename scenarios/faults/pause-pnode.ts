/**
 * `pause-pnode`: SIGSTOP a PNode past the detection time, then SIGCONT — a machine
 * that freezes (GC pause, swapped out, VM stalled) and wakes up believing it still
 * owns its VNodes. Its stale writes must be fenced; it must drop what it lost.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { FaultKind } from './types.js';

export const pausePNode: FaultKind = {
  kind: 'pause-pnode',
  description: 'SIGSTOP a PNode past detection, then SIGCONT; its stale writes must be fenced',
  async inject(ctx, fault) {
    const [t] = await ctx.pickPNodes(fault.target);
    const ms = fault.durationMs ?? ctx.detectMs * 3;
    const child = ctx.cluster.procs.get(t)!;
    child.kill('SIGSTOP');
    const at = Date.now();
    await sleep(ms);
    child.kill('SIGCONT');
    return { kind: this.kind, target: t, atStep: fault.atStep, at, healedAt: Date.now(), expectDead: [t], detail: `SIGSTOP ${t} for ${ms} ms, then SIGCONT` };
  },
};
