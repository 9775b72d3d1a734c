/** What a PNode can do, measured once at start-up and sent in every heartbeat. */
import { availableParallelism, totalmem } from 'node:os';
import type { Kernels } from '../kernels/types.js';
import type { PNodeCapacity } from '../protocol.js';
import { listVNodeTypes } from '../registry.js';

/**
 * Measure this PNode's matmul speed (256², the best run): capacity for placement. The runs
 * are spread over at least 150 ms, so that a moment of contention — PNodes started
 * together measure while their neighbours load — does not make a fast PNode look slow
 * (seen: 4.2 vs 96 GFLOP/s for two identical PNodes from 5 runs back to back, and
 * placement gave all six VNodes to one). Re-measuring over time is the operations issue's.
 */
export async function measureGflops(k: Kernels): Promise<number> {
  const n = 256;
  const a = new Float32Array(n * n).fill(0.5);
  const b = new Float32Array(n * n).fill(0.25);
  await k.matmul(a, b, n, n, n); // compile / warm up
  let best = Infinity;
  const started = performance.now();
  for (let i = 0; i < 5 || (performance.now() - started < 150 && i < 200); i++) {
    const t = performance.now();
    await k.matmul(a, b, n, n, n);
    best = Math.min(best, performance.now() - t);
    if (i % 10 === 9) await new Promise((r) => setTimeout(r, 5)); // let a busy neighbour's moment pass
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
