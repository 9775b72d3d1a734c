/**
 * A deployment's trained parameters as a safetensors file (`dcnr export`), and such a
 * file as the starting point of a run (`dcnr train --init`).
 *
 * The file holds every parameter as `<vnode>.<param>` in its kernel layout
 * (runtime/parameters.ts; e.g. a dense W is [in, out], y = x·W + b), and in
 * `__metadata__` (strings only, as the format wants):
 *   format      `dcnr-1`
 *   spec        the model spec, JSON: enough to rebuild the forward pass elsewhere
 *   paramsHash  trainer/evaluate.ts `paramsHash` of these parameters
 *   version     which state of the deployment: `latest` (its committed checkpoints) or
 *               a served version's step (`--version STEP`, docs/serving.md)
 *   deployment  the deployment's name
 *   seed        the run's seed
 *   steps       updates applied by the least advanced VNode with parameters (all of
 *               them, for a finished run)
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { isKnownType, ModelSpec, type ResolvedModel } from '../runtime/model.js';
import { fromNamedTensors, toNamedTensors } from '../runtime/parameters.js';
import { decodeSafetensors, encodeSafetensors, type Safetensors } from '../runtime/safetensors.js';
import type { StateStore } from '../runtime/state-store.js';
import { loadVersion, servedVersions } from '../runtime/versions.js';
import { readProgress } from '../runtime/vnode-record.js';
import type { Tensors } from '../runtime/vnode-type.js';
import { loadCommitted, paramsHash } from './evaluate.js';

/** The `format` of the files this code writes (and the only one it reads a spec from). */
export const EXPORT_FORMAT = 'dcnr-1';

/** Which state of a deployment to read: `latest` (its committed checkpoints) or a served version's step (docs/serving.md). */
export type ParamsVersion = 'latest' | number;

/** A deployment's parameters as of `version`. */
export interface DeploymentParameters {
  /** Every VNode's tensors (parameters and optimizer slots), by index. */
  tensors: Tensors[];
  version: string;
  /** Updates applied by the least advanced VNode that has parameters (undefined: none has). */
  steps?: number;
}

/** Read a deployment's parameters: the one place a `--version` will choose what is read. */
export async function readParameters(store: StateStore, model: ResolvedModel, version: ParamsVersion = 'latest', generation?: number): Promise<DeploymentParameters> {
  // A type this process does not know stands in without parameters: its would be left out.
  const unknown = model.vnodes.find((v) => !isKnownType(v));
  if (unknown) throw new Error(`VNode ${unknown.index} of ${model.spec.name} is of type ${unknown.def.type}, not known in this process: load it with --types FILE`);
  if (version !== 'latest') {
    if (generation === undefined) throw new Error('a served version is read with its deployment\'s generation');
    const served = await servedVersions(store, model, generation);
    if (!served.includes(version)) throw new Error(`${model.spec.name} has no served version ${version}: ${served.length ? `served versions are ${served.join(', ')}` : 'none is served'}`);
    return { tensors: await loadVersion(store, model, generation, version), version: String(version), steps: version };
  }
  const committed = await loadCommitted(store, model);
  const applied = model.vnodes
    .filter((v) => (v.def.parameters ?? []).length > 0)
    .map((v) => {
      const p = readProgress(committed[v.index].meta);
      if (!p.ok) throw new Error(`${model.spec.name}.${v.index}: its stored state is unreadable: ${p.error}`);
      return p.value.applied;
    });
  return { tensors: committed.map((c) => c.tensors), version, ...(applied.length > 0 ? { steps: Math.min(...applied) } : {}) };
}

/** The safetensors file of a model's parameters, with the metadata above. */
export function exportSafetensors(
  model: ResolvedModel,
  params: DeploymentParameters,
  about: { deployment: string; seed?: number },
): { bytes: Uint8Array; tensors: number; paramsHash: string } {
  const named = toNamedTensors(model, params.tensors);
  const hash = paramsHash(model, params.tensors);
  const metadata: Record<string, string> = {
    format: EXPORT_FORMAT,
    spec: JSON.stringify(model.spec),
    paramsHash: hash,
    version: params.version,
    deployment: about.deployment,
    ...(about.seed !== undefined ? { seed: String(about.seed) } : {}),
    ...(params.steps !== undefined ? { steps: String(params.steps) } : {}),
  };
  return { bytes: encodeSafetensors(named, metadata), tensors: named.length, paramsHash: hash };
}

/** A safetensors file read for `train --init`: its tensors, and the model spec its metadata carries, if any. */
export interface InitFile {
  path: string;
  file: Safetensors;
  /** From `__metadata__.spec` of a `dcnr-1` file; undefined when it has none. */
  spec?: ModelSpec;
}

/** Read and check a safetensors file. @throws an Error starting with the file's path, one sentence. */
export function readInitFile(path: string): InitFile {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new Error(`--init ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let file: Safetensors;
  try {
    file = decodeSafetensors(bytes);
  } catch (err) {
    throw new Error(`--init ${path}: not a usable safetensors file: ${(err as Error).message}`);
  }
  const raw = file.metadata.spec;
  if (raw === undefined) return { path, file };
  if (file.metadata.format !== EXPORT_FORMAT) throw new Error(`--init ${path}: its __metadata__ has a spec but format ${JSON.stringify(file.metadata.format)}, not ${EXPORT_FORMAT}; give --model`);
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new Error(`--init ${path}: __metadata__.spec is not valid JSON`);
  }
  const spec = ModelSpec.safeParse(json);
  if (!spec.success) throw new Error(`--init ${path}: __metadata__.spec is not a valid model spec (${spec.error.issues[0].path.join('.') || '(root)'}: ${spec.error.issues[0].message})`);
  return { path, file, spec: spec.data };
}

/** Parameters a run starts from (trainer/train.ts `TrainOptions.init`). */
export interface StartingParameters {
  /** Per VNode index, its parameters (`{}` for a VNode without). */
  tensors: Tensors[];
  /** What they are called for people: the file's name. */
  source: string;
}

/**
 * The per-VNode parameters of `model` from a file, checked (names, shapes, finite values),
 * and what to call them. @throws an Error naming the file and the first mismatch.
 */
export function initFromFile(model: ResolvedModel, init: InitFile): StartingParameters {
  try {
    return { tensors: fromNamedTensors(model, init.file.tensors), source: basename(init.path) };
  } catch (err) {
    throw new Error(`--init ${init.path}: ${(err as Error).message}`);
  }
}
