/**
 * The kernel interface: every numeric operation a VNode type may call.
 *
 * VNode types only ever talk to this interface, so a backend (gpu.js, OpenBLAS,
 * plain JS) can be added or swapped without touching any VNode type.
 *
 * Conventions (all backends):
 * - Matrices are dense, row-major `Float32Array`s; shapes are passed explicitly.
 * - Every method returns a NEW array and never mutates its inputs.
 * - Results are deterministic for a given backend and thread count: the same
 *   inputs give bit-identical outputs.
 * - Methods are async so a backend may run on another thread or device.
 */
export interface Kernels {
  /** The mode actually in use, e.g. `gpu.js:webasm`, `js`, `blas:openblas`. */
  readonly mode: string;

  /**
   * C = op(A) · op(B), where op(X) is X or Xᵀ.
   * `m`, `k`, `n` are the shapes AFTER the transposition: op(A) is m×k, op(B) is k×n, C is m×n.
   * So with `transA`, `a` is stored k×m; with `transB`, `b` is stored n×k.
   */
  matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number, opts?: MatmulOptions): Promise<Float32Array>;

  /** y[r,c] = x[r,c] + bias[c] for a rows×cols matrix. */
  addBias(x: Float32Array, bias: Float32Array, rows: number, cols: number): Promise<Float32Array>;
  /** Column sums of a rows×cols matrix (the bias gradient): out[c] = Σ_r dy[r,c]. */
  sumRows(dy: Float32Array, rows: number, cols: number): Promise<Float32Array>;

  /** Elementwise activation of `x`. */
  activation(fn: ActivationFn, x: Float32Array): Promise<Float32Array>;
  /**
   * Elementwise activation gradient: dx = dy · f'(x).
   * Takes the activation INPUT `x` (not its output) for every `fn`.
   */
  activationGrad(fn: ActivationFn, x: Float32Array, dy: Float32Array): Promise<Float32Array>;

  /**
   * Softmax cross-entropy over rows of `logits` (rows×cols) against one-hot (or soft)
   * `target` rows. `loss` is the mean over rows; `grad` = (softmax − target) / rows.
   * Numerically stable (max-subtracted).
   */
  softmaxCrossEntropy(logits: Float32Array, target: Float32Array, rows: number, cols: number): Promise<LossResult>;
  /** Mean squared error: loss = mean((pred − target)²) over all elements; grad = 2(pred − target)/n. */
  mse(pred: Float32Array, target: Float32Array): Promise<LossResult>;

  /**
   * One Adam step for parameter `p` with moments `m`, `v` and gradient `g`: the new
   * parameter and moments (new arrays). `c1`, `c2` are the bias corrections
   * 1 − β₁ᵗ, 1 − β₂ᵗ. Every backend gives the bits of the plain-JS one
   * (typed-array-ops.ts `adamStep`): the optimizer is not part of the kernel mode.
   */
  adam(p: Float32Array, m: Float32Array, v: Float32Array, g: Float32Array, h: AdamStep): Promise<{ p: Float32Array; m: Float32Array; v: Float32Array }>;
  /** p − step·m/(√v+ε) (a new array): Adam's direction extrapolated (weight prediction). Bits as `adamPredict` in typed-array-ops.ts. */
  adamPredict(p: Float32Array, m: Float32Array, v: Float32Array, step: number, eps: number): Promise<Float32Array>;

  /** Release compiled kernels and device resources. */
  dispose(): void;
}

export interface AdamStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  c1: number;
  c2: number;
}

export interface MatmulOptions {
  /** Use Aᵀ. @default false */
  transA?: boolean;
  /** Use Bᵀ. @default false */
  transB?: boolean;
}

export type ActivationFn = 'relu' | 'tanh' | 'sigmoid';

export interface LossResult {
  /** The mean loss over the batch, as a float64 number computed from float32 terms. */
  loss: number;
  grad: Float32Array;
}
