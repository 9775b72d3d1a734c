/**
 * Served versions of a deployment's parameters (docs/serving.md). Version `s` is the
 * model's parameters after update step s: every VNode with parameters stores them
 * (runtime/state-store.ts `VersionRecord`) for each multiple of the spec's `versionEvery`
 * and for its last update, before the checkpoint that covers that update is committed.
 * A version is **served** only when it is complete and committed: every VNode with
 * parameters has its record of it, and that VNode's committed checkpoint covers the
 * step. So `latest` moves forward only on committed checkpoints, and a version, once
 * served, never changes (its bytes are a pure function of the run: invariant 3).
 */
import type { ResolvedModel } from './model.js';
import type { StateStore } from './state-store.js';
import { readProgress } from './vnode-record.js';
import type { Tensors } from './vnode-type.js';

/** VNodes that keep versions: those with parameters. */
export const versionedVNodes = (model: ResolvedModel) => model.vnodes.filter((v) => (v.def.parameters ?? []).length > 0);

/** The steps of a deployment's served versions (complete and committed), ascending. */
export async function servedVersions(store: StateStore, model: ResolvedModel, generation: number): Promise<number[]> {
  const dep = model.spec.name;
  let common: number[] | null = null;
  for (const v of versionedVNodes(model)) {
    const [steps, committed] = await Promise.all([store.versionSteps(dep, v.index), store.read(dep, v.index)]);
    if (!committed || committed.meta.generation !== generation) return [];
    const progress = readProgress(committed.meta);
    const applied = progress.ok ? progress.value.applied : 0;
    const mine: number[] = steps.filter((s) => s <= applied);
    common = common === null ? mine : common.filter((s) => mine.includes(s));
  }
  return common ?? [];
}

/** Every VNode's parameters of version `step` (`{}` for VNodes without parameters); throws a sentence if it is not there. */
export async function loadVersion(store: StateStore, model: ResolvedModel, generation: number, step: number): Promise<Tensors[]> {
  const out: Tensors[] = model.vnodes.map(() => ({}));
  await Promise.all(versionedVNodes(model).map(async (v) => (out[v.index] = await loadVNodeVersion(store, model, v.index, generation, step))));
  return out;
}

/** One VNode's parameters of version `step`, checked against its type's declared parameters. */
export async function loadVNodeVersion(store: StateStore, model: ResolvedModel, index: number, generation: number, step: number): Promise<Tensors> {
  const dep = model.spec.name;
  const record = await store.readVersionRecord(dep, index, step);
  if (record === null) throw new Error(`version ${step} of ${dep}.${index} is not stored (served versions: dcnr serve --version latest, or see docs/serving.md)`);
  if (typeof record === 'string') throw new Error(record);
  if (record.generation !== generation) throw new Error(`version ${step} of ${dep}.${index} belongs to an earlier run of ${dep} (generation ${record.generation}, now ${generation})`);
  const tensors = await store.loadVersion(record);
  for (const name of model.vnodes[index].def.parameters ?? []) {
    if (!tensors[name]) throw new Error(`version ${step} of ${dep}.${index} has no parameter ${name}`);
  }
  return tensors;
}
