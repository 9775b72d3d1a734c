/**
 * `restart-nats`: the single file-store nats-server is stopped (gracefully: SIGTERM,
 * its store flushed) and started again on the same port after `durationMs`. Every
 * process must reconnect and training go on. (`kill-nats` is the same with a SIGKILL;
 * `kill-nats-node` kills nodes of a replicated cluster.)
 */
import type { FaultKind } from './types.js';

export const restartNats: FaultKind = {
  kind: 'restart-nats',
  description: 'stop the nats-server gracefully and start it again after durationMs',
  async inject(ctx, fault) {
    const ms = fault.durationMs ?? 2000;
    const at = Date.now();
    await ctx.cluster.restartNats(0, ms);
    return { kind: this.kind, target: 'nats', atStep: fault.atStep, at, healedAt: Date.now(), expectDead: [], detail: `nats-server down ${ms} ms (graceful stop, restart on the same port and store)` };
  },
};
