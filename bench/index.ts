/** Every benchmark, in the order `dcnr bench` runs them (one file each). */
import { federatedBenchmark } from './federated.js';
import { hopBenchmark } from './hop.js';
import { kernelsBenchmark } from './kernels.js';
import { ledgerBenchmark } from './ledger.js';
import { lmBenchmark } from './lm.js';
import { memoryBenchmark } from './memory.js';
import { recoveryBenchmark } from './recovery.js';
import { scaleBenchmark } from './scale.js';
import { serveBenchmark } from './serve.js';
import { trainBenchmark } from './train.js';
import type { Benchmark } from './types.js';

export const BENCHMARKS = {
  kernels: kernelsBenchmark,
  hop: hopBenchmark,
  train: trainBenchmark,
  lm: lmBenchmark,
  serve: serveBenchmark,
  ledger: ledgerBenchmark,
  federated: federatedBenchmark,
  recovery: recoveryBenchmark,
  memory: memoryBenchmark,
  scale: scaleBenchmark,
} satisfies Record<string, Benchmark<unknown>>;

export type BenchmarkName = keyof typeof BENCHMARKS;
