/**
 * Optimizers, as pure functions over typed arrays: same inputs, bit-identical
 * outputs on every backend (they are elementwise and cheap next to the matmuls,
 * so they stay in plain JS for determinism across kernel modes).
 *
 * Each step returns NEW arrays: the actor host persists only tensors whose
 * identity changed, so replacing (never mutating) is what marks them dirty.
 */
import { z } from 'zod';

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
 * `step` is 1 for the first update (Adam's bias correction needs it).
 * Returns the replaced tensors (the parameter and its slots).
 */
export function applyUpdate(
  opt: OptimizerConfig,
  tensors: Record<string, Float32Array>,
  name: string,
  grad: Float32Array,
  step: number,
): Record<string, Float32Array> {
  const p = tensors[name];
  if (!p || p.length !== grad.length) throw new Error(`applyUpdate: ${name} has ${p?.length} elements, gradient ${grad.length}`);
  const out = new Float32Array(p.length);
  if (opt.kind === 'sgd') {
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
  const m0 = tensors[`${name}_m`];
  const v0 = tensors[`${name}_v`];
  const m = new Float32Array(p.length);
  const v = new Float32Array(p.length);
  const { lr, beta1, beta2, eps } = opt;
  const c1 = 1 - Math.pow(beta1, step);
  const c2 = 1 - Math.pow(beta2, step);
  for (let i = 0; i < p.length; i++) {
    const g = grad[i];
    m[i] = beta1 * m0[i] + (1 - beta1) * g;
    v[i] = beta2 * v0[i] + (1 - beta2) * g * g;
    out[i] = p[i] - (lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + eps);
  }
  return { [name]: out, [`${name}_m`]: m, [`${name}_v`]: v };
}

/**
 * Parameter `name` extrapolated `steps` optimizer steps ahead along the direction the
 * optimizer moves it now (weight prediction, as in SpecTrain, for a forward whose
 * gradient lands `steps` updates later): W − steps·lr·m/(√v+ε) for Adam (its moments
 * as stored, without bias correction: the prediction is damped while they warm up),
 * W − steps·lr·m for SGD with momentum. Plain SGD, or `steps` 0: W itself.
 */
export function predictParameter(opt: OptimizerConfig, tensors: Readonly<Record<string, Float32Array>>, name: string, steps: number): Float32Array {
  const p = tensors[name];
  const m = tensors[`${name}_m`];
  if (steps <= 0 || !m || (opt.kind === 'sgd' && opt.momentum === 0)) return p;
  const out = new Float32Array(p.length);
  const step = steps * opt.lr;
  if (opt.kind === 'sgd') {
    for (let i = 0; i < p.length; i++) out[i] = p[i] - step * m[i];
    return out;
  }
  const v = tensors[`${name}_v`];
  const { eps } = opt;
  for (let i = 0; i < p.length; i++) out[i] = p[i] - (step * m[i]) / (Math.sqrt(v[i]) + eps);
  return out;
}
