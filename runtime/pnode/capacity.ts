/** What a PNode can do, measured at start-up and sent in every heartbeat (its GFLOP/s re-measured: health.ts). */
import { availableParallelism, totalmem } from 'node:os';
import type { Kernels } from '../kernels/types.js';
import type { PNodeCapacity } from '../protocol.js';
import { listVNodeTypes } from '../registry.js';

/** The matmul size of every capacity probe: at start-up and in the health sampler's re-measurements (health.ts), so their figures compare. */
export const PROBE_N = 128;

/** GFLOP/s of a PROBE_N² matmul that took `ms`. */
export const gflopsOf = (ms: number) => Math.round(((2 * PROBE_N ** 3) / (Math.max(ms, 1e-4) / 1000) / 1e9) * 10) / 10;

/** A probe: the best of `runs` PROBE_N² matmuls on `a`, `b` (ms). */
export async function probeMatmul(k: Kernels, a: Float32Array, b: Float32Array, runs: number): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    const done = k.matmul(a, b, PROBE_N, PROBE_N, PROBE_N);
    // Backends that compute in the call (OpenBLAS, JS, gpu.js sync modes) are timed to its
    // return: the await after it also waits for whatever other actors queued as microtasks
    // (VNodes of one process hand messages over in memory, without yielding), which is
    // not this kernel's time. An asynchronous backend returns at once: timed to the await.
    const inCall = performance.now() - t;
    await done;
    best = Math.min(best, inCall >= SYNC_CALL_MS ? inCall : performance.now() - t);
  }
  return best;
}

/** A call that took this long computed in the call (no backend needs this long just to queue work). */
const SYNC_CALL_MS = 0.005;

export const probeInputs = () => [new Float32Array(PROBE_N * PROBE_N).fill(0.5), new Float32Array(PROBE_N * PROBE_N).fill(0.25)] as const;

/**
 * Measure this PNode's matmul speed at start-up (the best run). The runs are spread over
 * at least 150 ms, so that a moment of contention — PNodes started together measure
 * while their neighbours load — does not make a fast PNode look slow (seen: 4.2 vs 96
 * GFLOP/s for two identical PNodes from 5 runs back to back). It is only the first
 * figure: the heartbeat carries the median of the health sampler's re-measurements
 * from a few seconds on (health.ts).
 */
export async function measureGflops(k: Kernels): Promise<number> {
  const [a, b] = probeInputs();
  await k.matmul(a, b, PROBE_N, PROBE_N, PROBE_N); // compile / warm up
  let best = Infinity;
  const started = performance.now();
  for (let i = 0; i < 5 || (performance.now() - started < 150 && i < 200); i++) {
    best = Math.min(best, await probeMatmul(k, a, b, 1));
    if (i % 10 === 9) await new Promise((r) => setTimeout(r, 5)); // let a busy neighbour's moment pass
  }
  return gflopsOf(best);
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
