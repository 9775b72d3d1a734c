/**
 * kernels: GFLOP/s of a float32 matmul (256², 512², 1024²) and of a dense layer's
 * forward+backward at the MNIST-MLP shapes, in every backend that runs on this
 * machine — OpenBLAS (its thread counts), gpu.js modes, plain JS — with PyTorch beside
 * them. Median of repeated runs after a warm-up.
 */
import { createBlasKernels } from '../runtime/kernels/blas.js';
import { createGpuJsKernels } from '../runtime/kernels/gpujs.js';
import { createReferenceKernels } from '../runtime/kernels/reference.js';
import type { Kernels } from '../runtime/kernels/types.js';
import { matmulGflops, sig, timeRuns } from './stats.js';
import { blasName, runTorch, torchInfo } from './torch.js';
import type { Benchmark, BenchContext } from './types.js';

export interface KernelResult {
  /** `matmul` (size n: n×n·n×n) or `dense-fwd-bwd` (size = batch; `shape` = [batch, in, out]). */
  op: 'matmul' | 'dense-fwd-bwd';
  size: number;
  shape: [number, number, number];
  /** The kernel mode string (`blas:openblas-haswell-2t`, `gpu.js:webasm-async`, `js`, `torch:openblas-pthread`). */
  mode: string;
  gflops: number;
  /** Measured runs after warm-up. */
  runs: number;
}

export interface KernelsBench {
  results: KernelResult[];
  /** Backends that could not run here, with why. */
  skipped: Array<{ mode: string; reason: string }>;
  torch: { version: string; blas: string; threads: number } | null;
}

/** The dense layer of MNIST-MLP's first VNode: batch 64, 784 → 128. */
const DENSE: [number, number, number] = [64, 784, 128];

function filled(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    a[i] = (s / 2 ** 32) * 2 - 1;
  }
  return a;
}

/** What dense.ts does per step: y = x·W + b; dW = xᵀ·dy; db = Σ dy; dx = dy·Wᵀ. */
async function denseStep(k: Kernels, x: Float32Array, W: Float32Array, b: Float32Array, dy: Float32Array): Promise<void> {
  const [rows, inF, outF] = DENSE;
  await k.addBias(await k.matmul(x, W, rows, inF, outF), b, rows, outF);
  await k.matmul(x, dy, inF, rows, outF, { transA: true });
  await k.sumRows(dy, rows, outF);
  await k.matmul(dy, W, rows, outF, inF, { transB: true });
}

interface Backend {
  mode: string;
  make(): Promise<Kernels>;
  /** Slow backends skip the biggest size in --quick. */
  slow: boolean;
}

function backends(): Backend[] {
  return [
    { mode: 'blas (2 threads)', make: () => createBlasKernels({ threads: 2 }), slow: false },
    { mode: 'blas (1 thread)', make: () => createBlasKernels({ threads: 1 }), slow: false },
    { mode: 'gpu.js:headlessgl', make: async () => createGpuJsKernels({ mode: 'headlessgl' }), slow: false },
    { mode: 'gpu.js:webasm-async', make: async () => createGpuJsKernels({ mode: 'webasm', asyncMatmul: true }), slow: true },
    { mode: 'gpu.js:webasm', make: async () => createGpuJsKernels({ mode: 'webasm', asyncMatmul: false }), slow: true },
    { mode: 'gpu.js:cpu', make: async () => createGpuJsKernels({ mode: 'cpu' }), slow: true },
    { mode: 'js', make: async () => createReferenceKernels(), slow: true },
  ];
}

export const kernelsBenchmark: Benchmark<KernelsBench> = {
  name: 'kernels',
  description: 'matmul and dense fwd+bwd GFLOP/s per backend, PyTorch beside',
  async run(ctx: BenchContext): Promise<KernelsBench> {
    const sizes = [256, 512, 1024];
    const budgetMs = ctx.quick ? 300 : 1500;
    const results: KernelResult[] = [];
    const skipped: KernelsBench['skipped'] = [];
    const seen = new Set<string>();

    for (const be of backends()) {
      let k: Kernels;
      try {
        k = await be.make();
      } catch (err) {
        skipped.push({ mode: be.mode, reason: (err as Error).message.split('\n')[0] });
        continue;
      }
      // gpu.js falls back silently (e.g. headlessgl → webasm without a display): report what really ran.
      if (be.mode === 'gpu.js:headlessgl' && !k.mode.includes('gl')) {
        skipped.push({ mode: be.mode, reason: `no GL context here (gpu.js fell back to ${k.mode})` });
        continue;
      }
      if (seen.has(k.mode)) {
        skipped.push({ mode: be.mode, reason: `ran as ${k.mode}, already measured` });
        continue;
      }
      seen.add(k.mode);
      for (const n of sizes) {
        if (ctx.quick && be.slow && n > 512) continue;
        const a = filled(n * n, 1);
        const b = filled(n * n, 2);
        const t = await timeRuns(() => k.matmul(a, b, n, n, n), { budgetMs, minRuns: be.slow && n > 512 ? 2 : 3 });
        results.push({ op: 'matmul', size: n, shape: [n, n, n], mode: k.mode, gflops: sig(matmulGflops(n, n, n, t.medianMs)), runs: t.runs.length });
        ctx.progress(`kernels: ${k.mode} matmul ${n}² ${results.at(-1)!.gflops} GFLOP/s`);
      }
      const [rows, inF, outF] = DENSE;
      const x = filled(rows * inF, 3);
      const W = filled(inF * outF, 4);
      const bias = filled(outF, 5);
      const dy = filled(rows * outF, 6);
      const t = await timeRuns(() => denseStep(k, x, W, bias, dy), { budgetMs });
      results.push({ op: 'dense-fwd-bwd', size: rows, shape: DENSE, mode: k.mode, gflops: sig(3 * matmulGflops(rows, inF, outF, t.medianMs)), runs: t.runs.length });
      ctx.progress(`kernels: ${k.mode} dense ${DENSE.join('×')} fwd+bwd ${results.at(-1)!.gflops} GFLOP/s`);
      k.dispose();
    }

    const info = torchInfo();
    if (!info) {
      skipped.push({ mode: 'torch', reason: '/usr/bin/python3 cannot import torch (apt-get install python3-torch libopenblas0-pthread)' });
      return { results, skipped, torch: null };
    }
    const mode = `torch:${blasName(info).split(' ')[0]}-${info.threads}t`;
    for (const n of sizes) {
      const r = runTorch<{ gflops: number; runs: number }>(['matmul', n, budgetMs]);
      results.push({ op: 'matmul', size: n, shape: [n, n, n], mode, gflops: sig(r.gflops), runs: r.runs });
      ctx.progress(`kernels: ${mode} matmul ${n}² ${sig(r.gflops)} GFLOP/s`);
    }
    const r = runTorch<{ gflops: number; runs: number }>(['dense', ...DENSE, budgetMs]);
    results.push({ op: 'dense-fwd-bwd', size: DENSE[0], shape: DENSE, mode, gflops: sig(r.gflops), runs: r.runs });
    return { results, skipped, torch: { version: info.version, blas: blasName(info), threads: info.threads } };
  },
};
