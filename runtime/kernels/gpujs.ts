/**
 * The gpu.js kernel backend.
 *
 * Why it looks the way it does:
 * - ONE `GPU` instance per process and gpu.js mode (module-level singletons):
 *   a GL context can be created in one thread per process only, and the GPU
 *   object owns it.
 * - Kernels are compiled once per (op, shape, flags) and cached: compiling is
 *   far slower than running, and gpu.js bakes shapes into the compiled code.
 * - Every kernel has a 1-D output (`output: [m*n]`) so the result is one flat,
 *   row-major Float32Array, the interface's layout. Indices are recovered with
 *   `Math.floor(x / cols)`, which gpu.js evaluates in float32: exact while every
 *   array has fewer than 2^24 elements, so larger arrays are refused.
 * - Loop bounds come from `constants`: GL backends need compile-time loop bounds.
 * - Kernel sources are strings, not TS functions: gpu.js parses source text,
 *   and a transpiler (tsx/esbuild) is free to rewrite function bodies.
 * - The mode reported is the backend that ACTUALLY runs, read from
 *   `kernel.kernel.constructor.name` after a probe run, never from `gpu.mode`
 *   (gpu.js falls back silently, e.g. from GL to webasm when `gl` is missing).
 *   If any later kernel ends up on a different backend (gpu.js can degrade a
 *   kernel to CPU at build), the call throws instead of silently mixing
 *   numerics: determinism across PNodes is promised per reported mode.
 * - On webasm with WebAssembly threads available, matmul runs with gpu.js
 *   `asyncMode`, which splits the output cells over a worker pool (outputs of
 *   ≥ 4096 cells). Each cell is still computed by the same code in the same
 *   order, so results are bit-identical to the synchronous path, whatever the
 *   number of threads. The mode then reads `gpu.js:webasm-async`.
 *
 * Numerics: webasm and GL compute in float32 (sums accumulate in float32, in
 * ascending index order); gpu.js's cpu backend runs the kernel as plain JS, so
 * its sums accumulate in float64 and are rounded to float32 on store. Math.exp,
 * Math.tanh, Math.log are evaluated by the host's Math in float64 and rounded.
 * Loss scalars are summed in JS in float64 from float32 per-row/per-element terms.
 */
import { GPU } from 'gpu.js';
import type { IKernelRunShortcut, KernelVariable } from 'gpu.js';
import {
  checkActivation,
  checkActivationGrad,
  checkAddBias,
  checkBatchedMatmul,
  checkGather,
  checkLayerNorm,
  checkLayerNormGrad,
  checkMatmul,
  checkMse,
  checkSoftmaxCrossEntropy,
  checkSoftmaxCrossEntropyIds,
  checkSoftmaxRows,
  checkSoftmaxRowsGrad,
  checkSumRows,
} from './checks.js';
import type { ActivationFn, Kernels, LossResult, MatmulOptions } from './types.js';
import { adamPredict, adamStep, GELU_C, GELU_K, scatterAdd } from './typed-array-ops.js';

/** gpu.js modes this backend can be asked for (`gpu` = gpu.js chooses). */
export type GpuJsMode = 'gpu' | 'webgl' | 'headlessgl' | 'webasm' | 'cpu';

/** Options for {@link createGpuJsKernels}. */
export interface GpuJsKernelOptions {
  /** gpu.js mode to request. @default 'webasm' */
  mode?: GpuJsMode;
  /**
   * Run matmul through gpu.js `asyncMode` (threaded on webasm) when the backend
   * supports threads. Set false to benchmark the synchronous path.
   * @default true
   */
  asyncMatmul?: boolean;
}

/** gpu.js kernel class name → the name used in our mode strings. */
const BACKEND_NAMES: Record<string, string> = {
  WebAssemblyKernel: 'webasm',
  CPUKernel: 'cpu',
  HeadlessGLKernel: 'headlessgl',
  WebGLKernel: 'webgl',
  WebGL2Kernel: 'webgl2',
  WebGPUKernel: 'webgpu',
};

/** Backends whose run allocates a fresh, exactly-sized output array per call (checked in their source). */
const FRESH_OUTPUT_BACKENDS = new Set(['WebAssemblyKernel', 'CPUKernel']);

/** gpu.js indexes with float32 arithmetic; integers are exact below 2^24. */
const MAX_ELEMENTS = 1 << 24;

const gpus = new Map<GpuJsMode, GPU>();

function gpuFor(mode: GpuJsMode): GPU {
  let gpu = gpus.get(mode);
  if (!gpu) {
    gpu = new GPU({ mode }); // throws if the mode is unsupported here (e.g. headlessgl without `gl`)
    gpus.set(mode, gpu);
  }
  return gpu;
}

/** The kernel class actually behind a run shortcut (it can change after a fallback). */
function kernelClassName(fn: IKernelRunShortcut): string {
  return (fn.kernel as unknown as { constructor: { name: string } }).constructor.name;
}

function backendName(className: string, fn: IKernelRunShortcut): string {
  const known = BACKEND_NAMES[className];
  if (known) return known;
  // an unknown class (newer gpu.js): its static `mode` is the next best truth
  const ctor = (fn.kernel as unknown as { constructor: { mode?: string } }).constructor;
  return ctor.mode ?? className;
}

// ---------------------------------------------------------------- kernel sources
// `this.thread.x` is the flat output index. Names of constants are the
// loop bounds and row widths.

function matmulSource(transA: boolean, transB: boolean, batched = false): string {
  // op(A)[row, p] and op(B)[p, col] under the interface's storage convention:
  // transA → a is stored k×m; transB → b is stored n×k. The indices are walked
  // by running offsets rather than recomputed as `row * k + p` each step: on
  // webasm that roughly doubles matmul speed (measured: 0.9 → 1.9 GFLOP/s at
  // 512²) without changing the summation order.
  // Batched: the output runs over batch·m·n cells; cell x is in slice s = x / (m·n),
  // whose A and B start s·m·k and s·k·n elements in. Each cell then runs the very
  // loop of the plain matmul, so slice s has the bits of `matmul` on it.
  const aStart = transA ? 'row' : 'row * this.constants.k';
  const aStep = transA ? 'this.constants.m' : '1';
  const bStart = transB ? 'col * this.constants.k' : 'col';
  const bStep = transB ? '1' : 'this.constants.n';
  const cell = batched
    ? `const s = Math.floor(this.thread.x / this.constants.mn);
    const cell = this.thread.x - s * this.constants.mn;
    const row = Math.floor(cell / this.constants.n);
    const col = cell - row * this.constants.n;
    let ai = s * this.constants.mk + ${aStart};
    let bi = s * this.constants.kn + ${bStart};`
    : `const row = Math.floor(this.thread.x / this.constants.n);
    const col = this.thread.x - row * this.constants.n;
    let ai = ${aStart};
    let bi = ${bStart};`;
  return `function (a, b) {
    ${cell}
    let sum = 0;
    for (let p = 0; p < this.constants.k; p++) {
      sum += a[ai] * b[bi];
      ai += ${aStep};
      bi += ${bStep};
    }
    return sum;
  }`;
}

const ADD_BIAS = `function (x, bias) {
  const row = Math.floor(this.thread.x / this.constants.cols);
  return x[this.thread.x] + bias[this.thread.x - row * this.constants.cols];
}`;

const SUM_ROWS = `function (dy) {
  let sum = 0;
  for (let r = 0; r < this.constants.rows; r++) {
    sum += dy[r * this.constants.cols + this.thread.x];
  }
  return sum;
}`;

// relu as `v > 0 ? v : 0` (not Math.max) so -0 and NaN map to +0, as in the reference
const ACTIVATION: Record<ActivationFn, string> = {
  relu: `function (x) {
    const v = x[this.thread.x];
    if (v > 0) { return v; }
    return 0;
  }`,
  tanh: `function (x) {
    return Math.tanh(x[this.thread.x]);
  }`,
  sigmoid: `function (x) {
    return 1 / (1 + Math.exp(-x[this.thread.x]));
  }`,
  // tanh approximation; constants as in typed-array-ops.ts GELU_K = √(2/π), GELU_C
  gelu: `function (x) {
    const v = x[this.thread.x];
    return 0.5 * v * (1 + Math.tanh(${GELU_K} * (v + ${GELU_C} * v * v * v)));
  }`,
};

const ACTIVATION_GRAD: Record<ActivationFn, string> = {
  // the subgradient at 0 is taken as 0
  relu: `function (x, dy) {
    if (x[this.thread.x] > 0) { return dy[this.thread.x]; }
    return 0;
  }`,
  tanh: `function (x, dy) {
    const t = Math.tanh(x[this.thread.x]);
    return dy[this.thread.x] * (1 - t * t);
  }`,
  sigmoid: `function (x, dy) {
    const s = 1 / (1 + Math.exp(-x[this.thread.x]));
    return dy[this.thread.x] * (s * (1 - s));
  }`,
  gelu: `function (x, dy) {
    const v = x[this.thread.x];
    const t = Math.tanh(${GELU_K} * (v + ${GELU_C} * v * v * v));
    return dy[this.thread.x] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * ${GELU_K} * (1 + ${3 * GELU_C} * v * v));
  }`,
};

// Softmax CE in four passes. The max and the log of the shifted sum are kept
// apart (not folded into one log-sum-exp) so z = logit − max stays exact-ish
// in float32 even for logits around 1000.
const ROW_MAX = `function (logits) {
  const base = this.thread.x * this.constants.cols;
  let m = logits[base];
  for (let c = 1; c < this.constants.cols; c++) {
    const v = logits[base + c];
    if (v > m) { m = v; }
  }
  return m;
}`;

const ROW_LOG_SUM = `function (logits, rowMax) {
  const base = this.thread.x * this.constants.cols;
  const m = rowMax[this.thread.x];
  let sum = 0;
  for (let c = 0; c < this.constants.cols; c++) {
    sum += Math.exp(logits[base + c] - m);
  }
  return Math.log(sum);
}`;

const SOFTMAX_GRAD = `function (logits, target, rowMax, rowLogSum) {
  const row = Math.floor(this.thread.x / this.constants.cols);
  const z = logits[this.thread.x] - rowMax[row];
  return (Math.exp(z - rowLogSum[row]) - target[this.thread.x]) / this.constants.rows;
}`;

// −Σ t·log softmax = Σ t·(logSum − z): never takes log(0)
const SOFTMAX_ROW_LOSS = `function (logits, target, rowMax, rowLogSum) {
  const base = this.thread.x * this.constants.cols;
  const m = rowMax[this.thread.x];
  const ls = rowLogSum[this.thread.x];
  let sum = 0;
  for (let c = 0; c < this.constants.cols; c++) {
    sum += target[base + c] * (ls - (logits[base + c] - m));
  }
  return sum;
}`;

// Class-id targets: the kernels above with the one-hot target implied (t = 1 at the
// id, else 0). The same float32 operations, so the bits of the one-hot path.
const SOFTMAX_IDS_GRAD = `function (logits, ids, rowMax, rowLogSum) {
  const row = Math.floor(this.thread.x / this.constants.cols);
  const col = this.thread.x - row * this.constants.cols;
  const e = Math.exp(logits[this.thread.x] - rowMax[row] - rowLogSum[row]);
  if (col == ids[row]) { return (e - 1) / this.constants.rows; }
  return e / this.constants.rows; // (e − 0)/rows, as the one-hot kernel computes it: e − 0 is e
}`;

const SOFTMAX_IDS_ROW_LOSS = `function (logits, ids, rowMax, rowLogSum) {
  const base = this.thread.x * this.constants.cols;
  return rowLogSum[this.thread.x] - (logits[base + ids[this.thread.x]] - rowMax[this.thread.x]);
}`;

/**
 * How many columns row `r` of a row softmax sees: all, or with a causal mask over
 * blocks of T = cols rows, r mod T + 1. A mask is an `if` inside a loop over all
 * columns, because GL loop bounds must be compile-time constants.
 */
function visible(causal: boolean, r: string): string {
  return causal ? `${r} - Math.floor(${r} / this.constants.cols) * this.constants.cols + 1` : 'this.constants.cols';
}

// Row softmax in three passes (max, sum of exps, output); `s` is a 1-element array
// holding the scale (an argument, not a constant, so one kernel serves every scale and
// a whole-number scale is not compiled as an integer).
function softmaxSources(causal: boolean) {
  return {
    max: `function (x, s) {
      const base = this.thread.x * this.constants.cols;
      const visible = ${visible(causal, 'this.thread.x')};
      let m = x[base] * s[0];
      for (let c = 1; c < this.constants.cols; c++) {
        if (c < visible) {
          const v = x[base + c] * s[0];
          if (v > m) { m = v; }
        }
      }
      return m;
    }`,
    sum: `function (x, s, rowMax) {
      const base = this.thread.x * this.constants.cols;
      const visible = ${visible(causal, 'this.thread.x')};
      const m = rowMax[this.thread.x];
      let sum = 0;
      for (let c = 0; c < this.constants.cols; c++) {
        if (c < visible) { sum += Math.exp(x[base + c] * s[0] - m); }
      }
      return sum;
    }`,
    out: `function (x, s, rowMax, rowSum) {
      const row = Math.floor(this.thread.x / this.constants.cols);
      const col = this.thread.x - row * this.constants.cols;
      if (col >= ${visible(causal, 'row')}) { return 0; }
      return Math.exp(x[this.thread.x] * s[0] - rowMax[row]) / rowSum[row];
    }`,
  };
}

// Σ_c a[r,c]·b[r,c] per row (softmaxRowsGrad's Σ dy⊙y)
const ROW_DOT = `function (a, b) {
  const base = this.thread.x * this.constants.cols;
  let sum = 0;
  for (let c = 0; c < this.constants.cols; c++) {
    sum += a[base + c] * b[base + c];
  }
  return sum;
}`;

const SOFTMAX_ROWS_GRAD = `function (y, dy, dot, s) {
  const row = Math.floor(this.thread.x / this.constants.cols);
  return s[0] * y[this.thread.x] * (dy[this.thread.x] - dot[row]);
}`;

// Layer norm: row mean, then row rstd from it (two-pass variance), then the output.
const LN_MEAN = `function (x) {
  const base = this.thread.x * this.constants.cols;
  let sum = 0;
  for (let c = 0; c < this.constants.cols; c++) {
    sum += x[base + c];
  }
  return sum / this.constants.cols;
}`;

const LN_RSTD = `function (x, mean, eps) {
  const base = this.thread.x * this.constants.cols;
  const m = mean[this.thread.x];
  let sum = 0;
  for (let c = 0; c < this.constants.cols; c++) {
    const d = x[base + c] - m;
    sum += d * d;
  }
  return 1 / Math.sqrt(sum / this.constants.cols + eps[0]);
}`;

const LN_OUT = `function (x, mean, rstd, gamma, beta) {
  const row = Math.floor(this.thread.x / this.constants.cols);
  const col = this.thread.x - row * this.constants.cols;
  return (x[this.thread.x] - mean[row]) * rstd[row] * gamma[col] + beta[col];
}`;

// Backward: per row mean_c(g) and mean_c(g·x̂) with g = dy·gamma, x̂ = (x − mean)·rstd.
const LN_ROW_MEAN_G = `function (gamma, dy) {
  const base = this.thread.x * this.constants.cols;
  let sum = 0;
  for (let c = 0; c < this.constants.cols; c++) {
    sum += dy[base + c] * gamma[c];
  }
  return sum / this.constants.cols;
}`;

const LN_ROW_MEAN_GX = `function (x, gamma, dy, mean, rstd) {
  const base = this.thread.x * this.constants.cols;
  const m = mean[this.thread.x];
  const rs = rstd[this.thread.x];
  let sum = 0;
  for (let c = 0; c < this.constants.cols; c++) {
    sum += dy[base + c] * gamma[c] * ((x[base + c] - m) * rs);
  }
  return sum / this.constants.cols;
}`;

const LN_DX = `function (x, gamma, dy, mean, rstd, a, b) {
  const row = Math.floor(this.thread.x / this.constants.cols);
  const col = this.thread.x - row * this.constants.cols;
  const rs = rstd[row];
  const xh = (x[this.thread.x] - mean[row]) * rs;
  return rs * (dy[this.thread.x] * gamma[col] - a[row] - xh * b[row]);
}`;

// Σ_r dy·x̂ per column
const LN_DGAMMA = `function (x, dy, mean, rstd) {
  let sum = 0;
  for (let r = 0; r < this.constants.rows; r++) {
    const i = r * this.constants.cols + this.thread.x;
    sum += dy[i] * ((x[i] - mean[r]) * rstd[r]);
  }
  return sum;
}`;

const GATHER = `function (table, ids) {
  const row = Math.floor(this.thread.x / this.constants.cols);
  const col = this.thread.x - row * this.constants.cols;
  return table[ids[row] * this.constants.cols + col];
}`;

const MSE_GRAD = `function (pred, target) {
  return (2 * (pred[this.thread.x] - target[this.thread.x])) / this.constants.n;
}`;

const SQUARED_DIFF = `function (pred, target) {
  const d = pred[this.thread.x] - target[this.thread.x];
  return d * d;
}`;

// ---------------------------------------------------------------- backend

interface CachedKernel {
  fn: IKernelRunShortcut;
  outLength: number;
}

/**
 * Kernels on gpu.js. Synchronous to create: a tiny probe kernel runs first to
 * learn which backend gpu.js actually picked. Throws if the mode is not
 * available here (e.g. `headlessgl` without the `gl` package or a display).
 */
// Long on purpose: one object literal, one short method per kernel op, sharing the
// compiled-kernel cache and the mode detection of this closure.
export function createGpuJsKernels(opts: GpuJsKernelOptions = {}): Kernels {
  const requested: GpuJsMode = opts.mode ?? 'webasm';
  const gpu = gpuFor(requested);

  const probe = gpu.createKernel('function (x) { return x[this.thread.x] + 1; }', {
    output: [4],
    precision: 'single',
  });
  let expectedClass: string;
  let backend: string;
  let threads = false;
  try {
    const out = probe(new Float32Array([0, 1, 2, 3]) as unknown as KernelVariable) as unknown;
    const got = Array.from(out as ArrayLike<number>);
    if (got.join(',') !== '1,2,3,4') {
      throw new Error(`gpu.js probe kernel on mode "${requested}" returned [${got.join(', ')}], expected [1, 2, 3, 4]`);
    }
    expectedClass = kernelClassName(probe);
    backend = backendName(expectedClass, probe);
    threads = (probe.kernel.constructor as unknown as { isThreadsSupported?: boolean }).isThreadsSupported === true;
  } finally {
    probe.destroy();
  }
  // an explicitly requested backend must be the one that runs: gpu.js degrades
  // kernels (e.g. to cpu) at build, which must not pass for the mode asked for
  if (requested !== 'gpu' && backend !== requested) {
    throw new Error(`gpu.js mode "${requested}" is not usable here: kernels ran on ${expectedClass} instead`);
  }
  // asyncMode only buys anything where gpu.js can thread the run (webasm + wasm threads)
  const asyncMatmul = opts.asyncMatmul !== false && backend === 'webasm' && threads;
  const mode = `gpu.js:${backend}${asyncMatmul ? '-async' : ''}`;

  const cache = new Map<string, CachedKernel>();
  let disposed = false;

  function kernel(key: string, source: string, outLength: number, constants: Record<string, number>, asyncMode = false): CachedKernel {
    if (disposed) throw new Error(`${mode} kernels were disposed`);
    let entry = cache.get(key);
    if (!entry) {
      const fn = gpu.createKernel(source, {
        output: [outLength],
        constants,
        precision: 'single',
        asyncMode,
      });
      entry = { fn, outLength };
      cache.set(key, entry);
    }
    return entry;
  }

  /** Runs a cached kernel and returns a result the caller owns outright. */
  async function run(op: string, entry: CachedKernel, ...args: Float32Array[]): Promise<Float32Array> {
    for (const a of args) {
      if (a.length >= MAX_ELEMENTS) {
        throw new RangeError(`${op}: ${mode} supports arrays of fewer than 2^24 elements, got ${a.length}`);
      }
    }
    const raw = (await entry.fn(...(args as unknown as KernelVariable[]))) as unknown;
    const cls = kernelClassName(entry.fn);
    if (cls !== expectedClass) {
      throw new Error(
        `${op}: gpu.js ran this kernel on ${cls} instead of ${expectedClass} (mode ${mode}); ` +
          'refusing to mix backends, whose float results differ',
      );
    }
    if (
      raw instanceof Float32Array &&
      FRESH_OUTPUT_BACKENDS.has(cls) &&
      raw.length === entry.outLength &&
      raw.byteOffset === 0 &&
      raw.byteLength === raw.buffer.byteLength &&
      !(raw.buffer instanceof SharedArrayBuffer)
    ) {
      return raw; // already a fresh, exactly-sized array nobody else holds
    }
    // GL backends may hand back a reused readback buffer, or a plain array: copy
    const out = Float32Array.from(raw as ArrayLike<number>);
    if (out.length !== entry.outLength) {
      throw new Error(`${op}: gpu.js returned ${out.length} values, expected ${entry.outLength}`);
    }
    return out;
  }

  function checkSize(op: string, n: number): void {
    if (n >= MAX_ELEMENTS) throw new RangeError(`${op}: ${mode} supports arrays of fewer than 2^24 elements, got ${n}`);
  }

  return {
    mode,

    async matmul(a, b, m, k, n, opts: MatmulOptions = {}) {
      checkMatmul(a, b, m, k, n);
      checkSize('matmul', m * n);
      if (m * n === 0 || k === 0) return new Float32Array(m * n); // empty sum = 0; gpu.js rejects empty outputs
      const tA = opts.transA === true;
      const tB = opts.transB === true;
      const key = `matmul:${tA ? 'T' : 'N'}${tB ? 'T' : 'N'}:${m}x${k}x${n}`;
      const entry = kernel(key, matmulSource(tA, tB), m * n, { m, k, n }, asyncMatmul);
      return run('matmul', entry, a, b);
    },

    async batchedMatmul(a, b, batch, m, k, n, opts: MatmulOptions = {}) {
      checkBatchedMatmul(a, b, batch, m, k, n);
      checkSize('batchedMatmul', batch * m * n);
      if (batch * m * n === 0 || k === 0) return new Float32Array(batch * m * n);
      const tA = opts.transA === true;
      const tB = opts.transB === true;
      const key = `bmm:${tA ? 'T' : 'N'}${tB ? 'T' : 'N'}:${batch}x${m}x${k}x${n}`;
      const c = { m, k, n, mn: m * n, mk: m * k, kn: k * n };
      const entry = kernel(key, matmulSource(tA, tB, true), batch * m * n, c, asyncMatmul);
      return run('batchedMatmul', entry, a, b);
    },

    async softmaxRows(x, rows, cols, opts = {}) {
      checkSoftmaxRows(x, rows, cols, opts);
      if (rows * cols === 0) return new Float32Array(rows * cols);
      const causal = opts.causalT !== undefined;
      const src = softmaxSources(causal);
      const key = `sm${causal ? '.causal' : ''}:${rows}x${cols}`;
      const c = { rows, cols };
      const s = Float32Array.of(opts.scale ?? 1);
      const max = await run('softmaxRows', kernel(`${key}.max`, src.max, rows, c), x, s);
      const sum = await run('softmaxRows', kernel(`${key}.sum`, src.sum, rows, c), x, s, max);
      return run('softmaxRows', kernel(`${key}.out`, src.out, rows * cols, c), x, s, max, sum);
    },

    async softmaxRowsGrad(y, dy, rows, cols, opts = {}) {
      checkSoftmaxRowsGrad(y, dy, rows, cols, opts.scale);
      if (rows * cols === 0) return new Float32Array(rows * cols);
      const c = { rows, cols };
      const dot = await run('softmaxRowsGrad', kernel(`rowDot:${rows}x${cols}`, ROW_DOT, rows, c), dy, y);
      const entry = kernel(`smGrad:${rows}x${cols}`, SOFTMAX_ROWS_GRAD, rows * cols, c);
      return run('softmaxRowsGrad', entry, y, dy, dot, Float32Array.of(opts.scale ?? 1));
    },

    async layerNorm(x, gamma, beta, rows, cols, eps) {
      checkLayerNorm(x, gamma, beta, rows, cols, eps);
      if (rows === 0) return { y: new Float32Array(0), mean: new Float32Array(0), rstd: new Float32Array(0) };
      const shape = `${rows}x${cols}`;
      const c = { rows, cols };
      const mean = await run('layerNorm', kernel(`ln.mean:${shape}`, LN_MEAN, rows, c), x);
      const rstd = await run('layerNorm', kernel(`ln.rstd:${shape}`, LN_RSTD, rows, c), x, mean, Float32Array.of(eps));
      const y = await run('layerNorm', kernel(`ln.out:${shape}`, LN_OUT, rows * cols, c), x, mean, rstd, gamma, beta);
      return { y, mean, rstd };
    },

    async layerNormGrad(x, gamma, dy, mean, rstd, rows, cols) {
      checkLayerNormGrad(x, gamma, dy, mean, rstd, rows, cols);
      if (rows === 0) return { dx: new Float32Array(0), dgamma: new Float32Array(cols), dbeta: new Float32Array(cols) };
      const shape = `${rows}x${cols}`;
      const c = { rows, cols };
      const a = await run('layerNormGrad', kernel(`lnGrad.a:${shape}`, LN_ROW_MEAN_G, rows, c), gamma, dy);
      const b = await run('layerNormGrad', kernel(`lnGrad.b:${shape}`, LN_ROW_MEAN_GX, rows, c), x, gamma, dy, mean, rstd);
      const dx = await run('layerNormGrad', kernel(`lnGrad.dx:${shape}`, LN_DX, rows * cols, c), x, gamma, dy, mean, rstd, a, b);
      const dgamma = await run('layerNormGrad', kernel(`lnGrad.dgamma:${shape}`, LN_DGAMMA, cols, c), x, dy, mean, rstd);
      const dbeta = await run('layerNormGrad', kernel(`sumRows:${shape}`, SUM_ROWS, cols, c), dy);
      return { dx, dgamma, dbeta };
    },

    async gather(table, ids, rows, cols) {
      checkGather(table, ids, rows, cols);
      checkSize('gather', table.length);
      if (rows * cols === 0) return new Float32Array(rows * cols);
      const entry = kernel(`gather:${table.length}:${rows}x${cols}`, GATHER, rows * cols, { rows, cols });
      return run('gather', entry, table, ids);
    },

    // Not a gpu.js kernel: a scatter needs atomics or, as a gather (one thread per table
    // cell looping over every id), vocab× the work. The shared typed-array loop (float64
    // sums, increasing id order), as on the CPU backends: the same bits everywhere.
    async scatterAdd(ids, dy, tableRows, cols) {
      if (disposed) throw new Error(`${mode} kernels were disposed`);
      return scatterAdd(ids, dy, tableRows, cols);
    },

    async softmaxCrossEntropyIds(logits, ids, rows, cols): Promise<LossResult> {
      checkSoftmaxCrossEntropyIds(logits, ids, rows, cols);
      const shape = `${rows}x${cols}`;
      const c = { rows, cols };
      const op = 'softmaxCrossEntropyIds';
      const max = await run(op, kernel(`sce.max:${shape}`, ROW_MAX, rows, c), logits);
      const logSum = await run(op, kernel(`sce.logSum:${shape}`, ROW_LOG_SUM, rows, c), logits, max);
      const grad = await run(op, kernel(`sceIds.grad:${shape}`, SOFTMAX_IDS_GRAD, rows * cols, c), logits, ids, max, logSum);
      const rowLoss = await run(op, kernel(`sceIds.loss:${shape}`, SOFTMAX_IDS_ROW_LOSS, rows, c), logits, ids, max, logSum);
      let total = 0;
      for (let r = 0; r < rows; r++) total += rowLoss[r];
      return { loss: total / rows, grad };
    },

    async addBias(x, bias, rows, cols) {
      checkAddBias(x, bias, rows, cols);
      if (rows * cols === 0) return new Float32Array(0);
      const entry = kernel(`addBias:${rows}x${cols}`, ADD_BIAS, rows * cols, { rows, cols });
      return run('addBias', entry, x, bias);
    },

    async sumRows(dy, rows, cols) {
      checkSumRows(dy, rows, cols);
      if (cols === 0 || rows === 0) return new Float32Array(cols);
      const entry = kernel(`sumRows:${rows}x${cols}`, SUM_ROWS, cols, { rows, cols });
      return run('sumRows', entry, dy);
    },

    async activation(fn, x) {
      checkActivation(fn, x);
      if (x.length === 0) return new Float32Array(0);
      const entry = kernel(`act:${fn}:${x.length}`, ACTIVATION[fn], x.length, {});
      return run(`activation(${fn})`, entry, x);
    },

    async activationGrad(fn, x, dy) {
      checkActivationGrad(fn, x, dy);
      if (x.length === 0) return new Float32Array(0);
      const entry = kernel(`actGrad:${fn}:${x.length}`, ACTIVATION_GRAD[fn], x.length, {});
      return run(`activationGrad(${fn})`, entry, x, dy);
    },

    async softmaxCrossEntropy(logits, target, rows, cols): Promise<LossResult> {
      checkSoftmaxCrossEntropy(logits, target, rows, cols);
      const shape = `${rows}x${cols}`;
      const c = { rows, cols };
      const max = await run('softmaxCrossEntropy', kernel(`sce.max:${shape}`, ROW_MAX, rows, c), logits);
      const logSum = await run('softmaxCrossEntropy', kernel(`sce.logSum:${shape}`, ROW_LOG_SUM, rows, c), logits, max);
      const grad = await run('softmaxCrossEntropy', kernel(`sce.grad:${shape}`, SOFTMAX_GRAD, rows * cols, c), logits, target, max, logSum);
      const rowLoss = await run('softmaxCrossEntropy', kernel(`sce.loss:${shape}`, SOFTMAX_ROW_LOSS, rows, c), logits, target, max, logSum);
      let total = 0;
      for (let r = 0; r < rows; r++) total += rowLoss[r];
      return { loss: total / rows, grad };
    },

    // The optimizer is not a GPU kernel here: the plain-JS one (bits as every backend).
    async adam(p, m, v, g, h) {
      return adamStep(p, m, v, g, h);
    },
    async adamPredict(p, m, v, step, eps) {
      return adamPredict(p, m, v, step, eps);
    },
    async mse(pred, target) {
      checkMse(pred, target);
      const n = pred.length;
      const grad = await run('mse', kernel(`mse.grad:${n}`, MSE_GRAD, n, { n }), pred, target);
      const sq = await run('mse', kernel(`mse.sq:${n}`, SQUARED_DIFF, n, { n }), pred, target);
      let total = 0;
      for (let i = 0; i < n; i++) total += sq[i];
      return { loss: total / n, grad };
    },

    dispose() {
      disposed = true;
      for (const { fn } of cache.values()) fn.destroy();
      cache.clear();
    },
  };
}
