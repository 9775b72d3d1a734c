/**
 * Optimizers, as functions over typed arrays: same inputs, bit-identical outputs on
 * every backend. SGD is plain JS here; Adam runs on the kernels (`k.adam`, C on the
 * OpenBLAS backend: on wide layers it took as long as the matmuls in JS), whose every
 * implementation gives the bits of the JS reference — so the optimizer is not part
 * of the kernel mode.
 *
 * Each step returns NEW arrays: the actor host persists only tensors whose
 * identity changed, so replacing (never mutating) is what marks them dirty.
 */
import { z } from 'zod';
import type { Kernels } from './kernels/types.js';

export const OptimizerConfig = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('sgd'),
    /** @default 0.05 */
    lr: z.number().positive().default(0.05),
    /** Classical momentum; 0 = plain SGD. @default 0.9 */
    momentum: z.number().min(0).max(1).default(0.9),
  }),
  z.object({
    kind: z.literal('adam'),
    /** @default 0.001 */
    lr: z.number().positive().default(0.001),
    /** @default 0.9 */
    beta1: z.number().min(0).max(1).default(0.9),
    /** @default 0.999 */
    beta2: z.number().min(0).max(1).default(0.999),
    /** @default 1e-8 */
    eps: z.number().positive().default(1e-8),
  }),
]);
export type OptimizerConfig = z.infer<typeof OptimizerConfig>;

/** What a layer's `optimizer` defaults to when a model spec names none: Adam at PyTorch's defaults. */
export const DEFAULT_OPTIMIZER: OptimizerConfig = { kind: 'adam', lr: 0.001, beta1: 0.9, beta2: 0.999, eps: 1e-8 };

/** Names of the slot tensors an optimizer keeps for parameter `name`. */
export function slotNames(opt: OptimizerConfig, name: string): string[] {
  if (opt.kind === 'adam') return [`${name}_m`, `${name}_v`];
  return opt.momentum > 0 ? [`${name}_m`] : [];
}

/** Zeroed slot tensors for a parameter. */
export function initSlots(opt: OptimizerConfig, name: string, size: number): Record<string, Float32Array> {
  return Object.fromEntries(slotNames(opt, name).map((s) => [s, new Float32Array(size)]));
}

/**
 * One optimizer step for parameter `name` in `tensors` with gradient `grad`.
 * `step` is 1 for the first update (Adam's bias correction needs it). Adam runs on
 * the kernels (`k.adam`: C on the OpenBLAS backend, the same bits everywhere).
 * Returns the replaced tensors (the parameter and its slots).
 */
export async function applyUpdate(
  k: Pick<Kernels, 'adam'>,
  opt: OptimizerConfig,
  tensors: Record<string, Float32Array>,
  name: string,
  grad: Float32Array,
  step: number,
): Promise<Record<string, Float32Array>> {
  const p = tensors[name];
  if (!p || p.length !== grad.length) throw new Error(`applyUpdate: ${name} has ${p?.length} elements, gradient ${grad.length}`);
  if (opt.kind === 'sgd') {
    const out = new Float32Array(p.length);
    if (opt.momentum === 0) {
      for (let i = 0; i < p.length; i++) out[i] = p[i] - opt.lr * grad[i];
      return { [name]: out };
    }
    const m0 = tensors[`${name}_m`];
    const m = new Float32Array(p.length);
    for (let i = 0; i < p.length; i++) {
      m[i] = opt.momentum * m0[i] + grad[i];
      out[i] = p[i] - opt.lr * m[i];
    }
    return { [name]: out, [`${name}_m`]: m };
  }
  const { lr, beta1, beta2, eps } = opt;
  const r = await k.adam(p, tensors[`${name}_m`], tensors[`${name}_v`], grad, { lr, beta1, beta2, eps, c1: 1 - Math.pow(beta1, step), c2: 1 - Math.pow(beta2, step) });
  return { [name]: r.p, [`${name}_m`]: r.m, [`${name}_v`]: r.v };
}

/**
 * Parameter `name` extrapolated `steps` optimizer steps ahead along the direction the
 * optimizer moves it now (weight prediction, as in SpecTrain, for a forward whose
 * gradient lands `steps` updates later): W − steps·lr·m/(√v+ε) for Adam (its moments
 * as stored, without bias correction: the prediction is damped while they warm up),
 * W − steps·lr·m for SGD with momentum. Plain SGD, or `steps` 0: W itself.
 */
export async function predictParameter(
  k: Pick<Kernels, 'adamPredict'>,
  opt: OptimizerConfig,
  tensors: Readonly<Record<string, Float32Array>>,
  name: string,
  steps: number,
): Promise<Float32Array> {
  const p = tensors[name];
  const m = tensors[`${name}_m`];
  if (steps <= 0 || !m || (opt.kind === 'sgd' && opt.momentum === 0)) return p;
  const step = steps * opt.lr;
  if (opt.kind === 'sgd') {
    const out = new Float32Array(p.length);
    for (let i = 0; i < p.length; i++) out[i] = p[i] - step * m[i];
    return out;
  }
  return k.adamPredict(p, m, tensors[`${name}_v`], step, opt.eps);
}
