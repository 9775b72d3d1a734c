/**
 * scale: many small VNodes over 2 PNodes (10,000; 1,000 with --quick), as
 * deployments of 100 VNodes each (a dense layer, 98 ReLUs and a loss) — every
 * deployment has its own mailbox stream. (One deployment of 10,000 VNodes, i.e.
 * 20,000 consumers on one work-queue stream, was measured to slow nats-server 2.9's
 * consumer creation down to ≈10 per second: keep deployments to hundreds of VNodes.)
 * Measures activation latency (placement → running, and the activation work
 * itself), memory per idle VNode (RSS growth of the PNodes / VNodes hosted),
 * passivation (every VNode leaves memory after its idle time) and reactivation
 * (a message to a passivated VNode brings it back; the wake cascades down the chain).
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstream } from '@nats-io/jetstream';
import '../actors/index.js';
import { startLocalCluster } from '../cluster/local-cluster.js';
import { waitForPNodes } from '../cluster/view.js';
import { connectNats } from '../cluster/process.js';
import { openBuckets, subscribeClusterEvents, writeDeployment } from '../runtime/cluster-state.js';
import { sendMessage } from '../runtime/envelope.js';
import { ensureDeploymentStreams } from '../runtime/mailbox.js';
import { resolveModel, type ModelSpec } from '../runtime/model.js';
import { jetstreamManager } from '@nats-io/jetstream';
import { rssMiB } from './process.js';
import { sig, summarize } from './stats.js';
import type { Benchmark } from './types.js';

export interface ScaleBench {
  vnodes: number;
  pnodes: number;
  /** Placement (`assigned`) → running (`activated`), and the activation work alone (`activated.ms`). */
  activation: { p50Ms: number; p99Ms: number; workP50Ms: number; workP99Ms: number; allActiveMs: number };
  /** RSS growth of the PNodes per hosted idle VNode, and after passivation. */
  bytesPerIdleVNode: number;
  bytesPerPassivatedVNode: number;
  passivation: { afterIdleMs: number; passivated: number; allPassivatedMs: number };
  /** A message to a passivated VNode → running again (activation work per woken VNode). */
  reactivation: { woken: number; firstWakeMs: number; workP50Ms: number; workP99Ms: number };
}

const PASSIVATE_MS = 4000;

export const scaleBenchmark: Benchmark<ScaleBench> = {
  name: 'scale',
  description: 'thousands of small VNodes over 2 PNodes: activation, memory per idle VNode, passivation, reactivation',
  // Long on purpose: one benchmark's script, phase after phase (activate, measure
  // memory, passivate, reactivate), each reading the counters the one before left.
  async run(ctx) {
    const count = ctx.quick ? 1000 : 10_000;
    const PER = 100;
    const specs = Array.from({ length: count / PER }, (_, d) => ({
      name: `bench-scale-${d}`,
      dataset: 'mnist',
      pipelineDepth: 0,
      vnodes: [
        { type: 'layer.dense', config: { units: 10 } },
        ...Array.from({ length: PER - 2 }, () => ({ type: 'activation.relu', config: {} })),
        { type: 'loss.softmaxCrossEntropy', config: {} },
      ],
    })) as ModelSpec[];
    for (const spec of specs) resolveModel(spec);
    const cluster = await startLocalCluster({ pnodes: 2, storeDir: join(ctx.workDir, 'scale'), pnodeArgs: ['--passivate-ms', String(PASSIVATE_MS), '--max-vnodes', String(count)] });
    const nc = await connectNats(cluster.url, 'bench-scale');
    const assigned = new Map<string, number>();
    const activated: Array<{ vnode: string; at: number; ms: number }> = [];
    const passivated = new Map<string, number>();
    subscribeClusterEvents(nc, (e) => {
      if (e.type === 'assigned' && e.vnode.startsWith('bench-scale-')) assigned.set(e.vnode, e.at);
      if (e.type === 'activated' && e.vnode.startsWith('bench-scale-')) activated.push({ vnode: e.vnode, at: e.at, ms: e.ms });
      if (e.type === 'passivated' && e.vnode.startsWith('bench-scale-')) passivated.set(e.vnode, e.at);
    });
    const pids = () => ['pnode-1', 'pnode-2'].map((n) => cluster.procs.get(n)!.pid!);
    const totalRss = () => pids().reduce((s, p) => s + (rssMiB(p) ?? 0), 0);
    const waitFor = async (what: string, done: () => boolean, timeoutMs: number, status: () => string) => {
      const deadline = Date.now() + timeoutMs;
      let last = 0;
      while (!done()) {
        if (Date.now() > deadline) throw new Error(`scale: timed out waiting for ${what} (${status()})`);
        if (Date.now() - last > 5000) {
          ctx.progress(`scale: waiting for ${what}: ${status()}`);
          last = Date.now();
        }
        await sleep(100);
      }
    };
    try {
      await waitForPNodes(nc, 2);
      await sleep(1000);
      const before = totalRss();
      ctx.progress(`scale: deploying ${count} VNodes (${specs.length} deployments) on 2 PNodes (PNodes at ${sig(before)} MiB) …`);
      const jsm = await jetstreamManager(nc);
      const { deployments } = await openBuckets(nc);
      const t0 = Date.now();
      for (const spec of specs) {
        await ensureDeploymentStreams(jsm, spec.name);
        await writeDeployment(deployments, { spec, seed: 1, batch: 1, steps: 1, createdAt: new Date().toISOString() });
      }
      const firstActivation = () => new Set(activated.map((a) => a.vnode)).size;
      await waitFor(`${count} activations`, () => firstActivation() >= count, 900_000, () => `${firstActivation()}/${count} active`);
      const allActiveMs = Date.now() - t0;
      const lat = [...new Map(activated.map((a) => [a.vnode, a])).values()].filter((a) => assigned.has(a.vnode)).map((a) => a.at - assigned.get(a.vnode)!);
      const work = activated.map((a) => a.ms);
      await sleep(500);
      const active = totalRss();
      ctx.progress(`scale: all ${count} active in ${allActiveMs} ms; PNodes at ${sig(active)} MiB; waiting for passivation …`);

      const tIdle = Date.now();
      await waitFor('passivation', () => passivated.size >= count, 900_000, () => `${passivated.size}/${count} passivated`);
      const allPassivatedMs = Date.now() - tIdle;
      await sleep(1000);
      const idle = totalRss();

      // Wake the chain: a valid fwd for seq 0 to the first ReLU; each wakes the next.
      const nBefore = activated.length;
      const js = jetstream(nc);
      const tWake = Date.now();
      await sendMessage(nc, { deployment: specs[0].name, to: 1, kind: 'fwd', seq: 0, epoch: 0, from: 'bench', tensor: { shape: [1, 10], data: new Float32Array(10).fill(0.5) } });
      const wakeWindow = ctx.quick ? 5000 : 10_000;
      await waitFor('the first reactivation', () => activated.length > nBefore, 60_000, () => 'none yet');
      const firstWakeMs = activated[nBefore].at - tWake;
      await sleep(wakeWindow);
      const woken = activated.slice(nBefore);
      const wWork = summarize(woken.map((a) => a.ms));
      const act = summarize(lat);
      const wk = summarize(work);
      const MiB = 1024 * 1024;
      ctx.progress(`scale: ${woken.length} reactivations in ${wakeWindow} ms, first after ${firstWakeMs} ms`);
      return {
        vnodes: count,
        pnodes: 2,
        activation: { p50Ms: sig(act.p50), p99Ms: sig(act.p99), workP50Ms: sig(wk.p50), workP99Ms: sig(wk.p99), allActiveMs },
        bytesPerIdleVNode: Math.round(((active - before) * MiB) / count),
        bytesPerPassivatedVNode: Math.round(((idle - before) * MiB) / count),
        passivation: { afterIdleMs: PASSIVATE_MS, passivated: passivated.size, allPassivatedMs },
        reactivation: { woken: woken.length, firstWakeMs, workP50Ms: sig(wWork.p50), workP99Ms: sig(wWork.p99) },
      };
    } finally {
      await nc.close();
      await cluster.stop();
    }
  },
};
