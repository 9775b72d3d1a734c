/** What a PNode can do, measured once at start-up and sent in every heartbeat. */
import { availableParallelism, totalmem } from 'node:os';
import type { Kernels } from '../kernels/types.js';
import type { PNodeCapacity } from '../protocol.js';
import { listVNodeTypes } from '../registry.js';

/** Measure this PNode's matmul speed briefly (256², a few runs): capacity for placement. */
export async function measureGflops(k: Kernels): Promise<number> {
  const n = 256;
  const a = new Float32Array(n * n).fill(0.5);
  const b = new Float32Array(n * n).fill(0.25);
  await k.matmul(a, b, n, n, n); // compile / warm up
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await k.matmul(a, b, n, n, n);
    best = Math.min(best, performance.now() - t);
  }
  return Math.round(((2 * n * n * n) / (best / 1000) / 1e9) * 10) / 10;
}

/** Cores, memory, kernels and their speed, the VNode limit, and every VNode type registered in this process. */
export async function measureCapacity(kernels: Kernels, maxVNodes: number): Promise<PNodeCapacity> {
  return {
    cores: availableParallelism(),
    memoryMb: Math.round(totalmem() / 2 ** 20),
    kernelMode: kernels.mode,
    gflops: await measureGflops(kernels),
    maxVNodes,
    types: listVNodeTypes()
      .map((t) => t.type)
      .sort(),
  };
}
