/**
 * `kill-nats`: the single file-store nats-server is SIGKILLed (a crash: no flush, no
 * goodbye) and started again on the same port and store after `durationMs`. Every
 * process must reconnect, and nothing the server acknowledged may be missing after it
 * comes back: the run ends identical, nothing lost, nothing applied twice.
 */
import type { FaultKind } from './types.js';

export const killNats: FaultKind = {
  kind: 'kill-nats',
  description: 'SIGKILL the nats-server and start it again (same port and store) after durationMs',
  async inject(ctx, fault) {
    const ms = fault.durationMs ?? 2000;
    const at = Date.now();
    ctx.log('kill-nats: SIGKILL nats-server');
    await ctx.cluster.restartNats(0, ms, 'kill');
    return { kind: this.kind, target: 'nats', atStep: fault.atStep, at, healedAt: Date.now(), expectDead: [], detail: `nats-server SIGKILLed, down ${ms} ms, restarted on the same port and store` };
  },
};
