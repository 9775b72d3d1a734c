/**
 * What a VNode type is: the one-file contract behind `actors/<kind>/<name>.ts`.
 *
 * A VNode type describes computation only. It never touches NATS, KV or timers:
 * the actor host (runtime/vnode-actor.ts) loads and saves its tensors, feeds it
 * validated messages in the order the schedule allows, and sends what it returns.
 */
import type { z } from 'zod';
import type { Kernels } from './kernels/types.js';
import type { Rng } from './rng.js';
import type { Tensor } from './tensor.js';

/** Named float32 tensors: parameters and optimizer slots. */
export type Tensors = Record<string, Float32Array>;

/** What every call of a VNode type gets. */
export interface VNodeContext<C> {
  /** The kernel backend of this process. */
  k: Kernels;
  /** The validated config of this VNode. */
  config: C;
  /** Features per row of the forward input. */
  inFeatures: number;
  /** Features per row of the forward output. */
  outFeatures: number;
  /**
   * In a forward: how many updates of this VNode land between this forward and the
   * update from its own gradient — min(seq, pipeline depth), fixed by the schedule. A
   * layer may use it to counter staleness (see layer.dense). Absent (0) elsewhere.
   */
  staleness?: number;
}

/** What a forward pass returns: the output and what backward will need for the same seq. */
export interface ForwardResult {
  y: Tensor;
  /** Arrays kept (and persisted) until the backward of this seq; e.g. the input. */
  stash?: Float32Array[];
}

/** What a backward pass returns. */
export interface BackwardResult {
  /** Gradient w.r.t. the forward input; omit when `needDx` is false (first VNode). */
  dx?: Tensor;
  /** Replaced tensors (new arrays; never mutate the old ones). */
  tensors?: Tensors;
}

export interface LossOutput {
  /** Mean loss over the batch. */
  loss: number;
  /** Gradient w.r.t. the loss input. */
  dx: Tensor;
}

interface CommonDefinition<C> {
  /** `<kind>.<name>`, e.g. `layer.dense`. Stable: it is stored with the VNode's state. */
  type: string;
  /** Bump when the persisted tensors change meaning; provide `upgrade`. */
  version: number;
  /** One line for `dcnr` listings and docs. */
  description: string;
  /** Validates (and defaults) the config given in a model spec. */
  config: z.ZodType<C, any>;
  /** Output features per row for an input of `inFeatures`. @default inFeatures */
  outFeatures?(config: C, inFeatures: number): number;
  /**
   * Bytes this VNode holds in memory while it trains: parameters, optimizer slots, and
   * the stash of the `depth` forwards that may be in flight at `batch` rows. Placement
   * weighs it (supervisor/placement/least-loaded.ts); an estimate, never math.
   * `batch` is rows of its activations viewed as [rows, features] (a sequence model's
   * batch × positions: runtime/model.ts `stateBytesOf`).
   * @default the stash of its inputs: depth × batch × inFeatures float32s
   */
  stateBytes?(args: { config: C; inFeatures: number; outFeatures: number; batch: number; depth: number }): number;
  /**
   * Bring tensors stored by an older `version` up to date.
   * Called on activation when the stored version is lower.
   */
  upgrade?(fromVersion: number, tensors: Tensors, config: C): Tensors;
}

/**
 * The shape of each parameter of a VNode, by name: the layout its kernels really use
 * (row-major), so a file exported from it (`dcnr export`) reads right elsewhere. Its
 * product must be the parameter's length.
 *
 * @example
 * parameterShapes: ({ inFeatures, outFeatures }) => ({ W: [inFeatures, outFeatures], b: [outFeatures] })
 */
export type ParameterShapes<C> = (args: { config: C; inFeatures: number; outFeatures: number }) => Record<string, number[]>;

/** A layer or activation: forward and backward. */
export interface TransformDefinition<C> extends CommonDefinition<C> {
  role: 'layer' | 'activation';
  /** Names of the trainable parameters (what `paramsHash` covers), in canonical order. */
  parameters?: readonly string[];
  /** Initial tensors: parameters and optimizer slots. */
  init?(args: { config: C; inFeatures: number; outFeatures: number; rng: Rng }): Tensors;
  /** The shape of each of `parameters`, as stored (row-major): what `dcnr export` writes. @default [length] */
  parameterShapes?: ParameterShapes<C>;
  forward(ctx: VNodeContext<C>, tensors: Readonly<Tensors>, x: Tensor): Promise<ForwardResult>;
  backward(
    ctx: VNodeContext<C> & { /** 1-based update number. */ step: number; needDx: boolean },
    tensors: Readonly<Tensors>,
    dy: Tensor,
    stash: Float32Array[],
  ): Promise<BackwardResult>;
}

/** A loss: the end of the forward pass, the start of the backward one. */
export interface LossDefinition<C> extends CommonDefinition<C> {
  role: 'loss';
  parameters?: undefined;
  init?: undefined;
  loss(ctx: VNodeContext<C>, x: Tensor, target: Tensor): Promise<LossOutput>;
  /** Predictions for evaluation (e.g. softmax probabilities, or the input itself). */
  predict?(ctx: VNodeContext<C>, x: Tensor): Promise<Tensor>;
}

/**
 * A merge: several inputs of one shape (a graph's fan-in, e.g. a residual connection),
 * one output. Its inputs come in the order the model spec lists them; its backward
 * returns one gradient per input, in that order.
 */
export interface MergeDefinition<C> extends CommonDefinition<C> {
  role: 'merge';
  parameters?: readonly string[];
  init?(args: { config: C; inFeatures: number; outFeatures: number; rng: Rng }): Tensors;
  /** As a layer's: the shape of each of `parameters`. @default [length] */
  parameterShapes?: ParameterShapes<C>;
  forward(ctx: VNodeContext<C>, tensors: Readonly<Tensors>, xs: Tensor[]): Promise<ForwardResult>;
  backward(
    ctx: VNodeContext<C> & { /** 1-based update number. */ step: number; /** Per input: whether its producer wants a gradient (false for the dataset). */ needDx: boolean[] },
    tensors: Readonly<Tensors>,
    dy: Tensor,
    stash: Float32Array[],
  ): Promise<{ dxs: Array<Tensor | undefined>; tensors?: Tensors }>;
}

/**
 * A federated layer's aggregator (runtime/federated/): built in, never written by users.
 * Its work (decode, average, outer step, encode) is runtime/federated/rounds.ts; the
 * parameters it holds are its layer's.
 */
export interface AggregatorDefinition extends CommonDefinition<Record<string, never>> {
  role: 'aggregator';
  parameters?: undefined;
  init?: undefined;
  parameterShapes?: undefined;
}

export type VNodeType<C = any> = TransformDefinition<C> | MergeDefinition<C> | LossDefinition<C> | AggregatorDefinition;

/**
 * Declare a VNode type. Identity function with checks, so mistakes surface at import.
 *
 * @example
 * export const leakyRelu = defineVNodeType({
 *   type: 'activation.leakyRelu', version: 1, role: 'activation',
 *   description: 'max(x, 0.01x)', config: z.object({ slope: z.number().default(0.01) }),
 *   async forward(ctx, _t, x) { ... return { y, stash: [x.data] }; },
 *   async backward(ctx, _t, dy, [x]) { ... return { dx }; },
 * });
 */
export function defineVNodeType<C>(def: TransformDefinition<C>): TransformDefinition<C>;
export function defineVNodeType<C>(def: LossDefinition<C>): LossDefinition<C>;
export function defineVNodeType<C>(def: MergeDefinition<C>): MergeDefinition<C>;
export function defineVNodeType<C>(def: VNodeType<C>): VNodeType<C> {
  if (!/^[a-z]+\.[A-Za-z0-9]+$/.test(def.type)) {
    throw new Error(`VNode type id ${JSON.stringify(def.type)} must look like <kind>.<name>, e.g. layer.dense`);
  }
  if (!Number.isInteger(def.version) || def.version < 1) throw new Error(`${def.type}: version must be a positive integer`);
  if (def.role === 'loss' && typeof def.loss !== 'function') throw new Error(`${def.type}: a loss type needs loss()`);
  if (def.role === 'aggregator') throw new Error(`${def.type}: aggregators are built in (runtime/federated/), not user types`);
  if (def.role !== 'loss' && (typeof def.forward !== 'function' || typeof def.backward !== 'function')) {
    throw new Error(`${def.type}: a ${def.role} type needs forward() and backward()`);
  }
  return def;
}
