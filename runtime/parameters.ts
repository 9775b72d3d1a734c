/**
 * A model's trainable parameters as named, shaped tensors: what `dcnr export` writes
 * and `dcnr train --init` reads (runtime/safetensors.ts holds the file format).
 *
 * Names are `<vnode>.<param>`: the VNode's `name` in the spec if it has one, else its
 * index, then the parameter as its type names it (`0.W`, `x1_attn.Wq`). VNode names
 * match NAME_PATTERN (no dots), so the first dot splits a name unambiguously. Order is
 * canonical (VNodes by index, each type's `parameters` in order), as `paramsHash` uses.
 * Shapes are the layout the kernels use (`VNodeType.parameterShapes`); a type that
 * declares none gets the 1-D `[length]`.
 */
import type { ResolvedModel, ResolvedVNode } from './model.js';
import { createRng } from './rng.js';
import type { NamedTensor } from './safetensors.js';
import { firstNonFinite, sizeOf } from './tensor.js';
import type { Tensors } from './vnode-type.js';

/** Where one parameter of a model is, and its shape. */
export interface ParameterSlot {
  index: number;
  param: string;
  /** `<vnode>.<param>`. */
  name: string;
  shape: number[];
}

/** The tensor name of parameter `param` of `v`. */
export const parameterName = (v: Pick<ResolvedVNode, 'name'>, param: string) => `${v.name}.${param}`;

/**
 * The shape of each parameter of `v`: its type's `parameterShapes`, or, for a type that
 * declares none, `[length]` with the length its `init` makes (an init with a fixed seed:
 * only the lengths are used).
 */
export function parameterShapesOf(v: ResolvedVNode): Record<string, number[]> {
  const params = v.def.parameters ?? [];
  if (params.length === 0 || v.def.role === 'loss') return {};
  const args = { config: v.config as never, inFeatures: v.inFeatures, outFeatures: v.outFeatures };
  const declared = v.def.parameterShapes?.(args);
  const made = declared ? undefined : v.def.init?.({ ...args, rng: createRng('shapes') });
  return Object.fromEntries(
    params.map((p) => {
      const shape = declared ? declared[p] : made?.[p] && [made[p].length];
      if (!shape) throw new Error(`${v.def.type} (VNode ${v.name}) declares parameter ${p} but ${declared ? 'parameterShapes' : 'init'} gives it no ${declared ? 'shape' : 'tensor'}`);
      return [p, shape];
    }),
  );
}

/** Every parameter of the model, in canonical order. */
export function parameterSlots(model: ResolvedModel): ParameterSlot[] {
  return model.vnodes.flatMap((v) => Object.entries(parameterShapesOf(v)).map(([param, shape]) => ({ index: v.index, param, name: parameterName(v, param), shape })));
}

/** The model's parameters out of every VNode's tensors, named and shaped (for export). */
export function toNamedTensors(model: ResolvedModel, tensors: Tensors[]): NamedTensor[] {
  return parameterSlots(model).map(({ index, param, name, shape }) => {
    const data = tensors[index]?.[param];
    if (!data) throw new Error(`${model.spec.name}.${index} has no parameter ${param}`);
    if (data.length !== sizeOf(shape)) throw new Error(`${model.spec.name}.${index}: parameter ${param} holds ${data.length} values, its shape [${shape}] says ${sizeOf(shape)}`);
    return { name, shape, data };
  });
}

/**
 * Each VNode's parameters (by index; `{}` for a VNode without) from named tensors, which
 * must be exactly the model's: every name present once, with its shape, every value
 * finite, and no other tensor. @throws an Error naming the first mismatch.
 */
export function fromNamedTensors(model: ResolvedModel, named: readonly NamedTensor[]): Tensors[] {
  const byName = new Map(named.map((t) => [t.name, t]));
  const slots = parameterSlots(model);
  const expected = new Set(slots.map((s) => s.name));
  const extra = named.filter((t) => !expected.has(t.name)).map((t) => t.name);
  if (extra.length > 0) {
    throw new Error(`it has tensor${extra.length > 1 ? 's' : ''} ${list(extra)} that model ${model.spec.name} does not have (its parameters: ${list([...expected])})`);
  }
  const out: Tensors[] = model.vnodes.map(() => ({}));
  for (const { index, param, name, shape } of slots) {
    const t = byName.get(name);
    if (!t) throw new Error(`it has no tensor ${name}, a parameter of model ${model.spec.name} (${model.vnodes[index].def.type} [${shape}])`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`tensor ${name} has shape [${t.shape}], model ${model.spec.name} needs [${shape}]`);
    }
    const bad = firstNonFinite(t.data);
    if (bad >= 0) throw new Error(`tensor ${name} has a non-finite value (${t.data[bad]}) at flat index ${bad}`);
    out[index][param] = t.data;
  }
  return out;
}

const list = (names: string[]) => (names.length <= 8 ? names.join(', ') : `${names.slice(0, 8).join(', ')} and ${names.length - 8} more`);
