/**
 * Reading a trained deployment back out of KV: parameter hash and test accuracy.
 */
import { createHash } from 'node:crypto';
import type { Kernels } from '../runtime/kernels/types.js';
import type { ResolvedModel } from '../runtime/model.js';
import type { StateStore } from '../runtime/state-store.js';
import { toBytes, type Tensor } from '../runtime/tensor.js';
import type { LossDefinition, MergeDefinition, Tensors, TransformDefinition } from '../runtime/vnode-type.js';

/** Every VNode's committed tensors, in index order. */
export async function loadAllTensors(store: StateStore, model: ResolvedModel): Promise<Tensors[]> {
  return Promise.all(
    model.vnodes.map(async (v) => {
      const committed = await store.read(model.spec.name, v.index);
      if (!committed) throw new Error(`${model.spec.name}.${v.index} has no stored state`);
      return (await store.load(committed.meta)).tensors;
    }),
  );
}

/**
 * sha256 over every VNode's parameters in canonical order: VNodes by index, then
 * each type's declared `parameters` in order, each as `<index>:<name>:<length>:` + raw bytes.
 * Two runs are bit-identical iff their hashes match.
 */
export function paramsHash(model: ResolvedModel, tensors: Tensors[]): string {
  const h = createHash('sha256');
  for (const v of model.vnodes) {
    for (const name of v.def.parameters ?? []) {
      const t = tensors[v.index][name];
      if (!t) throw new Error(`${model.spec.name}.${v.index} has no parameter ${name}`);
      h.update(`${v.index}:${name}:${t.length}:`);
      h.update(toBytes(t));
    }
  }
  return h.digest('hex');
}

/**
 * Run the forward graph over `x` in chunks, each VNode in index order on its inputs'
 * outputs (a merge on all of them), the loss's `predict` last; returns the model's outputs.
 */
export async function predict(k: Kernels, model: ResolvedModel, tensors: Tensors[], x: Float32Array, rows: number, chunk = 500): Promise<Float32Array> {
  const out = new Float32Array(rows * model.outputFeatures);
  for (let r0 = 0; r0 < rows; r0 += chunk) {
    const n = Math.min(chunk, rows - r0);
    const input: Tensor = { shape: [n, model.inputFeatures], data: x.slice(r0 * model.inputFeatures, (r0 + n) * model.inputFeatures) };
    const outputs: Tensor[] = [];
    let t = input;
    for (const v of model.vnodes) {
      const ctx = { k, config: v.config, inFeatures: v.inFeatures, outFeatures: v.outFeatures };
      const xs = v.inputs.map((from) => (from < 0 ? input : outputs[from]));
      if (v.def.role === 'loss') {
        const def = v.def as LossDefinition<unknown>;
        t = def.predict ? await def.predict(ctx, xs[0]) : xs[0];
      } else if (v.def.role === 'merge') {
        t = (await (v.def as MergeDefinition<unknown>).forward(ctx, tensors[v.index], xs)).y;
      } else {
        t = (await (v.def as TransformDefinition<unknown>).forward(ctx, tensors[v.index], xs[0])).y;
      }
      outputs[v.index] = t;
    }
    out.set(t.data, r0 * model.outputFeatures);
  }
  return out;
}

/** Fraction of rows whose arg-max output equals the label. */
export function accuracy(outputs: Float32Array, labels: Uint8Array, classes: number): number {
  let right = 0;
  for (let r = 0; r < labels.length; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (outputs[r * classes + c] > outputs[r * classes + best]) best = c;
    if (best === labels[r]) right++;
  }
  return right / labels.length;
}

/** Test accuracy and paramsHash of a trained deployment, from the parameters in KV. */
export async function evaluate(store: StateStore, model: ResolvedModel, k: Kernels, test: { x: Float32Array; y: Uint8Array; n: number }, classes: number) {
  const tensors = await loadAllTensors(store, model);
  const outputs = await predict(k, model, tensors, test.x, test.n);
  return { testAccuracy: accuracy(outputs, test.y, classes), paramsHash: paramsHash(model, tensors) };
}
