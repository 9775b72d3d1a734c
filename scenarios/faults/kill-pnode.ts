/** `kill-pnode`: SIGKILL a PNode (default: the busiest) — a machine that dies without a word. */
import type { FaultKind } from './types.js';

export const killPNode: FaultKind = {
  kind: 'kill-pnode',
  description: 'SIGKILL a PNode; its VNodes must move and resume from KV',
  async inject(ctx, fault) {
    const targets = await ctx.pickPNodes(fault.target);
    for (const t of targets) {
      ctx.cluster.expectExit(t);
      ctx.cluster.procs.get(t)!.kill('SIGKILL');
    }
    return { kind: this.kind, target: targets.join(','), atStep: fault.atStep, at: Date.now(), expectDead: targets, detail: `SIGKILL ${targets.join(', ')}` };
  },
};
