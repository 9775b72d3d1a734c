/**
 * Reading a trained deployment back out of KV: parameter hash and test accuracy.
 */
import { createHash } from 'node:crypto';
import type { Kernels } from '../runtime/kernels/types.js';
import { forwardVNode } from '../runtime/inference.js';
import type { ResolvedModel } from '../runtime/model.js';
import type { StateMeta, StateStore } from '../runtime/state-store.js';
import { toBytes, type Tensor } from '../runtime/tensor.js';
import type { TrainingData } from './data.js';
import type { Tensors } from '../runtime/vnode-type.js';

/** Every VNode's committed state: its meta and its tensors, in index order. */
export async function loadCommitted(store: StateStore, model: ResolvedModel): Promise<Array<{ meta: StateMeta; tensors: Tensors }>> {
  return Promise.all(
    model.vnodes.map(async (v) => {
      const committed = await store.read(model.spec.name, v.index);
      if (!committed) throw new Error(`${model.spec.name}.${v.index} has no stored state`);
      return { meta: committed.meta, tensors: (await store.load(committed.meta)).tensors };
    }),
  );
}

/** Every VNode's committed tensors, in index order. */
export async function loadAllTensors(store: StateStore, model: ResolvedModel): Promise<Tensors[]> {
  return (await loadCommitted(store, model)).map((c) => c.tensors);
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

/** The model's output for `input`: each VNode in index order on its inputs' outputs, the loss's `predict` last. */
export async function forwardGraph(k: Kernels, model: ResolvedModel, tensors: Tensors[], input: Tensor): Promise<Tensor> {
  const outputs: Tensor[] = [];
  for (const v of model.vnodes) outputs[v.index] = await forwardVNode(k, v, tensors[v.index], v.inputs.map((from) => (from < 0 ? input : outputs[from])));
  return outputs[model.vnodes.length - 1];
}

/** `forwardGraph` over `rows` rows of `x` (the model's input features each) in chunks; the outputs, rows in order. */
export async function predict(k: Kernels, model: ResolvedModel, tensors: Tensors[], x: Float32Array, rows: number, chunk = 500): Promise<Float32Array> {
  const parts: Float32Array[] = [];
  const inF = model.inputFeatures;
  for (let r0 = 0; r0 < rows; r0 += chunk) {
    const n = Math.min(chunk, rows - r0);
    parts.push((await forwardGraph(k, model, tensors, { shape: [n, inF], data: x.slice(r0 * inF, (r0 + n) * inF) })).data);
  }
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
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

/** The held-out scores (evalLoss; testAccuracy for classifiers) and paramsHash of a trained deployment, from the parameters in KV. */
export async function evaluate(store: StateStore, model: ResolvedModel, k: Kernels, data: TrainingData) {
  const tensors = await loadAllTensors(store, model);
  const outputs = await predict(k, model, tensors, data.held.x, data.held.rows);
  return { ...data.score(outputs), paramsHash: paramsHash(model, tensors) };
}
