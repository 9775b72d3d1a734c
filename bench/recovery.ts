/**
 * recovery: a PNode SIGKILLed during training, again and again (a fresh PNode joins
 * after each kill, so three stay alive): how long until the supervisor declares it
 * dead (detection, from its last heartbeat) and until its VNodes run again elsewhere
 * (resume). Numbers are the supervisor's `recovered` events; kill → declared dead is
 * also timed here, on this process's clock.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import '../actors/index.js';
import { startLocalCluster } from '../cluster/local-cluster.js';
import { readView, waitForPNodes } from '../cluster/view.js';
import { connectNats } from '../cluster/process.js';
import { createKernels } from '../runtime/kernels/index.js';
import { loadModelSpec, resolveModel } from '../runtime/model.js';
import { subscribeClusterEvents } from '../runtime/cluster-state.js';
import type { ClusterEvent } from '../runtime/protocol.js';
import { train } from '../trainer/train.js';
import { percentile, sig } from './stats.js';
import type { Benchmark } from './types.js';

export interface RecoveryBench {
  n: number;
  /** detection + resume (last heartbeat → every moved VNode running again). */
  p50Ms: number;
  maxMs: number;
  detect: { p50Ms: number; maxMs: number };
  resume: { p50Ms: number; maxMs: number };
  /** SIGKILL → `dead` event received, on one clock. */
  killToDead: { p50Ms: number; maxMs: number };
  detectTimeoutMs: number;
  paramsHash: string;
}

const DETECT_MS = 1000;

export const recoveryBenchmark: Benchmark<RecoveryBench> = {
  name: 'recovery',
  description: 'repeated SIGKILLs of a PNode during training: detection and resume times',
  async run(ctx) {
    const kills = ctx.quick ? 3 : 6;
    const every = 50;
    const steps = every * (kills + 1);
    const cluster = await startLocalCluster({ pnodes: 3, storeDir: join(ctx.workDir, 'recovery'), detectMs: DETECT_MS });
    const nc = await connectNats(cluster.url, 'bench-recovery');
    const recovered: Array<Extract<ClusterEvent, { type: 'recovered' }>> = [];
    const deadAt = new Map<string, number>();
    subscribeClusterEvents(nc, (e) => {
      if (e.type === 'recovered') recovered.push(e);
      if (e.type === 'dead') deadAt.set(e.pnode, Date.now());
    });
    const killedAt = new Map<string, number>();
    let next = 4;
    try {
      await waitForPNodes(nc, 3);
      const model = resolveModel(loadModelSpec('mnist-mlp'));
      const killOne = async () => {
        const view = await readView(nc);
        const victim = view!.pnodes.filter((p) => p.alive && p.vnodes.length > 0).sort((a, b) => b.vnodes.length - a.vnodes.length)[0];
        if (!victim) return;
        cluster.procs.get(victim.id)?.kill('SIGKILL');
        killedAt.set(victim.id, Date.now());
        ctx.progress(`recovery: SIGKILL ${victim.id} (${victim.vnodes.length} VNodes) — kill ${killedAt.size}/${kills}`);
        const name = `pnode-${next++}`;
        await cluster.spawnPNode(name);
      };
      let pending: Promise<void> = Promise.resolve();
      let fired = 0;
      const result = await train({
        nc,
        model,
        steps,
        batch: 32,
        seed: 3,
        kernels: await createKernels(),
        onProgress: ({ done }) => {
          if (fired < kills && done >= every * (fired + 1)) {
            fired++;
            pending = pending.then(killOne);
          }
        },
      });
      await pending;
      // The last recovery may still be in flight when training ends.
      const deadline = Date.now() + 15_000;
      while (recovered.length < killedAt.size && Date.now() < deadline) await sleep(100);
      const mine = recovered.filter((r) => killedAt.has(r.pnode));
      if (mine.length === 0) throw new Error('no recovery was observed');
      const total = mine.map((r) => r.detectMs + r.resumeMs);
      const detect = mine.map((r) => r.detectMs);
      const resume = mine.map((r) => r.resumeMs);
      const k2d = [...killedAt].filter(([p]) => deadAt.has(p)).map(([p, t]) => deadAt.get(p)! - t);
      const stat = (xs: number[]) => ({ p50Ms: sig(percentile(xs, 50)), maxMs: sig(Math.max(...xs)) });
      ctx.progress(`recovery: ${mine.length} recoveries, detect p50 ${stat(detect).p50Ms} ms, resume p50 ${stat(resume).p50Ms} ms`);
      return {
        n: mine.length,
        ...stat(total),
        detect: stat(detect),
        resume: stat(resume),
        killToDead: k2d.length ? stat(k2d) : { p50Ms: NaN, maxMs: NaN },
        detectTimeoutMs: DETECT_MS,
        paramsHash: result.paramsHash,
        replayed: { p50: percentile(mine.map((r) => r.replayed ?? 0), 50), max: Math.max(...mine.map((r) => r.replayed ?? 0)) },
      };
    } finally {
      await nc.close();
      await cluster.stop();
    }
  },
};
