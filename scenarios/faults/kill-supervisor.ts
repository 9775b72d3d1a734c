/**
 * `kill-supervisor`: SIGKILL the supervisor and start a new one. The supervisor is never
 * on the data path and keeps its state in KV: training must not notice.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { FaultKind } from './types.js';

export const killSupervisor: FaultKind = {
  kind: 'kill-supervisor',
  description: 'SIGKILL the supervisor, start a new one after durationMs',
  async inject(ctx, fault) {
    const ms = fault.durationMs ?? 500;
    ctx.cluster.expectExit('supervisor');
    ctx.cluster.procs.get('supervisor')!.kill('SIGKILL');
    const at = Date.now();
    await sleep(ms);
    ctx.cluster.spawnSupervisor();
    return { kind: this.kind, target: 'supervisor', atStep: fault.atStep, at, healedAt: Date.now(), expectDead: [], detail: `SIGKILL supervisor, new one after ${ms} ms` };
  },
};
