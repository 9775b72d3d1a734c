/**
 * `kill-nats-node`: on a 3-node JetStream cluster with every bucket and stream at R3,
 * SIGKILL a follower of the deployment's mailbox stream, bring it back, then SIGKILL
 * that stream's leader and bring it back. Writes stall during leader election
 * (≈5 s measured); nothing acknowledged may be lost.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Bucket, Stream } from '../../runtime/protocol.js';
import type { FaultKind } from './types.js';

export const killNatsNode: FaultKind = {
  kind: 'kill-nats-node',
  description: 'SIGKILL a NATS follower, then the stream leader, of a 3-node R3 cluster (each restarted)',
  needs: { natsCluster: true },
  async inject(ctx, fault) {
    const ms = fault.durationMs ?? 3000;
    const jsm = await jetstreamManager(ctx.nc);
    const leaderIndex = async () => {
      const info = await jsm.streams.info(Stream.mailbox(ctx.deployment));
      const name = info.cluster?.leader;
      const i = ctx.cluster.nats.findIndex((_, j) => `nats-${j + 1}` === name);
      if (i < 0) throw new Error(`kill-nats-node: no leader found for ${Stream.mailbox(ctx.deployment)} (cluster info: ${JSON.stringify(info.cluster)})`);
      return i;
    };
    // Killing a node is only harmless to what is replicated: refuse to test anything less.
    for (const stream of [Stream.mailbox(ctx.deployment), Stream.metrics(ctx.deployment), ...Object.values(Bucket).map((b) => `KV_${b}`)]) {
      const r = (await jsm.streams.info(stream)).config.num_replicas;
      if (r !== 3) throw new Error(`kill-nats-node: ${stream} has ${r} replica(s), not 3 (every creator must run with DCNR_REPLICAS=3)`);
    }
    const at = Date.now();
    const steps: string[] = [];
    const leader = await leaderIndex();
    const follower = (leader + 1) % ctx.cluster.nats.length;
    for (const [role, i] of [['follower', follower], ['leader', -1]] as const) {
      const victim = i >= 0 ? i : await leaderIndex();
      ctx.log(`kill-nats-node: SIGKILL nats-${victim + 1} (${role})`);
      await ctx.cluster.restartNats(victim, ms, 'kill');
      steps.push(`${role} nats-${victim + 1} down ${ms} ms`);
      await sleep(ms);
    }
    return { kind: this.kind, target: 'nats', atStep: fault.atStep, at, healedAt: Date.now(), expectDead: [], detail: steps.join(', ') };
  },
};
