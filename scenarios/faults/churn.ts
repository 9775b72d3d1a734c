/**
 * `churn`: PNodes join and leave again and again — `count` rounds (default 4), each
 * starting a fresh PNode and then removing an older one, alternately by SIGTERM (a
 * graceful leave) and SIGKILL (a crash). Never the last live PNode.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { FaultKind } from './types.js';

export const churn: FaultKind = {
  kind: 'churn',
  description: 'PNodes join and leave repeatedly (count rounds), gracefully and by SIGKILL',
  async inject(ctx, fault) {
    const rounds = fault.count ?? 4;
    const gap = fault.durationMs ?? 1500;
    const at = Date.now();
    const killed: string[] = [];
    const log: string[] = [];
    for (let r = 0; r < rounds; r++) {
      const fresh = await ctx.cluster.spawnPNode();
      await sleep(gap);
      const live = (await ctx.pickPNodes('all')).filter((p) => p !== fresh);
      if (live.length === 0) continue;
      const victim = live[ctx.rng.int(live.length)];
      const graceful = r % 2 === 0;
      ctx.cluster.expectExit(victim);
      ctx.cluster.procs.get(victim)!.kill(graceful ? 'SIGTERM' : 'SIGKILL');
      if (!graceful) killed.push(victim);
      log.push(`+${fresh} −${victim}${graceful ? ' (SIGTERM)' : ' (SIGKILL)'}`);
      await sleep(gap);
    }
    return { kind: this.kind, target: 'pnodes', atStep: fault.atStep, at, healedAt: Date.now(), expectDead: killed, detail: log.join(', ') };
  },
};
