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

  /**
   * `batch` independent matmuls C_i = op(A_i) · op(B_i), with `m`, `k`, `n` and the
   * transpositions exactly as in {@link matmul}. `a` holds the `batch` matrices A_i one
   * after another (each m·k elements, stored k×m with `transA`), `b` likewise (k·n each),
   * and the result holds the C_i one after another (m·n each).
   * Slice i has the bits of `matmul` on slice i alone, on every backend (attention's
   * per-head products).
   */
  batchedMatmul(a: Float32Array, b: Float32Array, batch: number, m: number, k: number, n: number, opts?: MatmulOptions): Promise<Float32Array>;

  /** y[r,c] = x[r,c] + bias[c] for a rows×cols matrix. */
  addBias(x: Float32Array, bias: Float32Array, rows: number, cols: number): Promise<Float32Array>;
  /** Column sums of a rows×cols matrix (the bias gradient): out[c] = Σ_r dy[r,c]. */
  sumRows(dy: Float32Array, rows: number, cols: number): Promise<Float32Array>;

  /**
   * Row softmax of a rows×cols matrix: y[r,c] = exp(s·x[r,c] − max) / Σ_c' exp(s·x[r,c'] − max),
   * with s = `opts.scale` (default 1) and the max taken over the row's visible columns:
   * numerically stable for any finite input.
   *
   * `opts.causalT` = T applies a causal mask: the rows form blocks of T rows (one T×T
   * score matrix per block, so `cols` must be T and `rows` a multiple of T), and row r
   * sees only columns c ≤ r mod T. Masked entries are exactly 0 (not a tiny exp), so they
   * take no probability and pass no gradient. Masking here rather than with −∞ scores
   * keeps every value finite: the message validation of the runtime refuses non-finite
   * tensors, and −∞·0 would be NaN in a backward.
   */
  softmaxRows(x: Float32Array, rows: number, cols: number, opts?: SoftmaxOptions): Promise<Float32Array>;
  /**
   * The backward of {@link softmaxRows} from its OUTPUT `y`: dx = s · y ⊙ (dy − Σ_c dy⊙y) per
   * row, s = `opts.scale` (default 1, the same scale the forward used). Masked entries
   * (y = 0) get dx = 0, so no causal option is needed here.
   */
  softmaxRowsGrad(y: Float32Array, dy: Float32Array, rows: number, cols: number, opts?: Pick<SoftmaxOptions, 'scale'>): Promise<Float32Array>;

  /**
   * Layer normalization over the last axis of a rows×cols matrix:
   * y = (x − mean)·rstd·gamma + beta, with mean and the biased variance over the row,
   * rstd = 1/√(var + eps) (PyTorch's LayerNorm). `mean` and `rstd` (one per row) are
   * returned for the backward; `y` is computed from those float32 values, so a backward
   * that gets them sees exactly the normalization the forward applied.
   */
  layerNorm(x: Float32Array, gamma: Float32Array, beta: Float32Array, rows: number, cols: number, eps: number): Promise<LayerNormResult>;
  /**
   * The backward of {@link layerNorm}, from its input `x` and the `mean`, `rstd` it returned:
   * with x̂ = (x − mean)·rstd and g = dy·gamma,
   * dx = rstd·(g − mean_c(g) − x̂·mean_c(g⊙x̂)); dgamma[c] = Σ_r dy·x̂; dbeta[c] = Σ_r dy.
   */
  layerNormGrad(x: Float32Array, gamma: Float32Array, dy: Float32Array, mean: Float32Array, rstd: Float32Array, rows: number, cols: number): Promise<LayerNormGrad>;

  /**
   * Row lookup (an embedding): out[r,:] = table[ids[r],:] for r < rows (= ids.length).
   * `table` is (table.length / cols)×cols; `ids` holds row indices as float32 integers,
   * each in [0, table rows): anything else is refused with a RangeError. Exact copies.
   */
  gather(table: Float32Array, ids: Float32Array, rows: number, cols: number): Promise<Float32Array>;
  /**
   * The backward of {@link gather}: a zeroed tableRows×cols array to which row r of `dy`
   * (ids.length×cols) is added at row ids[r], for r in increasing order (so repeated ids
   * sum in a fixed order: deterministic). `ids` checked as in `gather`.
   */
  scatterAdd(ids: Float32Array, dy: Float32Array, tableRows: number, cols: number): Promise<Float32Array>;

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
  /**
   * {@link softmaxCrossEntropy} against class ids instead of one-hot rows: `ids[r]` is the
   * class of row r, a float32 integer in [0, cols) (else a RangeError). Gives the bits of
   * `softmaxCrossEntropy` with the matching one-hot target on the same backend, without
   * building (or sending) a rows×cols target.
   */
  softmaxCrossEntropyIds(logits: Float32Array, ids: Float32Array, rows: number, cols: number): Promise<LossResult>;
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

/**
 * `gelu` is the tanh approximation (GPT-2; PyTorch's `gelu(approximate='tanh')`):
 * 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
 */
export type ActivationFn = 'relu' | 'tanh' | 'sigmoid' | 'gelu';

export interface SoftmaxOptions {
  /** Multiply the input by this (> 0) before the softmax (attention's 1/√d). @default 1 */
  scale?: number;
  /** Causal mask over blocks of T rows, T = cols (see Kernels.softmaxRows). @default no mask */
  causalT?: number;
}

export interface LayerNormResult {
  /** The normalized rows×cols output. */
  y: Float32Array;
  /** Per-row mean (rows). */
  mean: Float32Array;
  /** Per-row 1/√(var + eps) (rows). */
  rstd: Float32Array;
}

export interface LayerNormGrad {
  dx: Float32Array;
  /** cols */
  dgamma: Float32Array;
  /** cols */
  dbeta: Float32Array;
}

export interface LossResult {
  /** The mean loss over the batch, as a float64 number computed from float32 terms. */
  loss: number;
  grad: Float32Array;
}
