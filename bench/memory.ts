/**
 * memory: a model of about 50M parameters (784 → 4×4000 → 10, Adam, so ≈3× that in
 * state) trained for a few steps spread over 4 PNodes, against one process holding
 * all of it (`dcnr train --pnodes 0`). Peak RSS (VmHWM) of every process.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import '../actors/index.js';
import { startLocalCluster } from '../cluster/local-cluster.js';
import { readView, waitForPNodes } from '../cluster/view.js';
import { connectNats } from '../cluster/process.js';
import { createKernels } from '../runtime/kernels/index.js';
import { resolveModel, type ModelSpec } from '../runtime/model.js';
import { train } from '../trainer/train.js';
import { peakRssMiB, runDcnr } from './process.js';
import { sig } from './stats.js';
import type { Benchmark } from './types.js';

export interface MemoryBench {
  parameters: number;
  /** `idlePeakRssMiB`: the PNode's peak before training (registered, no VNode yet). */
  pnodes: Array<{ id: string; vnodes: string[]; peakRssMiB: number; idlePeakRssMiB?: number }>;
  /** The largest PNode peak, and one process holding the whole model. */
  maxPNodePeakRssMiB: number;
  singleProcessPeakRssMiB: number;
  steps: number;
  batch: number;
}

const HIDDEN = 4000;

function bigModel(): ModelSpec {
  const dense = (units: number) => ({ type: 'layer.dense', config: { units, init: 'he' as const, optimizer: { kind: 'adam', lr: 0.0001 } } });
  return {
    name: 'bench-memory',
    dataset: 'mnist',
    pipelineDepth: 0,
    vnodes: [
      dense(HIDDEN),
      { type: 'activation.relu', config: {} },
      dense(HIDDEN),
      { type: 'activation.relu', config: {} },
      dense(HIDDEN),
      { type: 'activation.relu', config: {} },
      dense(HIDDEN),
      { type: 'activation.relu', config: {} },
      dense(10),
      { type: 'loss.softmaxCrossEntropy', config: {} },
    ],
  } as ModelSpec;
}

export function parameterCount(spec: ModelSpec): number {
  let inF = 784;
  let n = 0;
  for (const v of spec.vnodes) {
    const units = (v.config as { units?: number }).units;
    if (v.type === 'layer.dense' && units) {
      n += inF * units + units;
      inF = units;
    }
  }
  return n;
}

export const memoryBenchmark: Benchmark<MemoryBench> = {
  name: 'memory',
  description: 'peak RSS per PNode with a ~50M-parameter model over 4 PNodes vs one process',
  async run(ctx) {
    const spec = bigModel();
    const parameters = parameterCount(spec);
    const steps = ctx.quick ? 2 : 4;
    const batch = 8;

    ctx.progress(`memory: ${(parameters / 1e6).toFixed(1)}M parameters over 4 PNodes, ${steps} steps …`);
    const cluster = await startLocalCluster({ pnodes: 4, storeDir: join(ctx.workDir, 'memory-cluster') });
    const nc = await connectNats(cluster.url, 'bench-memory');
    let pnodes: MemoryBench['pnodes'] = [];
    try {
      await waitForPNodes(nc, 4);
      // What a PNode holds before any VNode (runtime, kernels, its start-up benchmark): the floor under every peak.
      const before = new Map([...cluster.procs].map(([id, proc]) => [id, sig(peakRssMiB(proc.pid ?? -1) ?? NaN)]));
      await train({ nc, model: resolveModel(spec), steps, batch, seed: 1, kernels: await createKernels() });
      const view = await readView(nc);
      pnodes = view!.pnodes
        .filter((p) => p.alive)
        .map((p) => ({ id: p.id, vnodes: p.vnodes, peakRssMiB: sig(peakRssMiB(cluster.procs.get(p.id)?.pid ?? -1) ?? NaN), ...(before.has(p.id) ? { idlePeakRssMiB: before.get(p.id)! } : {}) }))
        .sort((a, b) => a.id.localeCompare(b.id));
    } finally {
      await nc.close();
      await cluster.stop();
    }
    ctx.progress(`memory: PNode peaks ${pnodes.map((p) => `${p.id} ${p.peakRssMiB} MiB`).join(', ')}; one process …`);

    const file = join(ctx.workDir, 'memory-model.json');
    writeFileSync(file, JSON.stringify(spec));
    let single = 0;
    let pid = -1;
    const poll = setInterval(() => (single = Math.max(single, peakRssMiB(pid) ?? 0)), 100);
    try {
      await runDcnr(['train', '--model', file, '--pnodes', '0', '--steps', String(steps), '--batch', String(batch), '--store', join(ctx.workDir, 'memory-single')], {}, (p) => (pid = p));
    } finally {
      clearInterval(poll);
    }
    await sleep(0);
    ctx.progress(`memory: one process peak ${sig(single)} MiB`);
    return {
      parameters,
      pnodes,
      maxPNodePeakRssMiB: Math.max(...pnodes.map((p) => p.peakRssMiB)),
      singleProcessPeakRssMiB: sig(single),
      steps,
      batch,
    };
  },
};
