/**
 * A deployment that starts from given parameters (`dcnr train --init FILE`) instead of
 * its types' random init. The file is on the trainer's machine only, and a VNode may
 * start on any PNode, so the parameters travel through KV: the trainer writes each one
 * as an immutable, hashed blob (`stateInitKey`, chunked like state blobs) and names
 * them in the deployment record (`DeploymentRecord.init`); a VNode that has no state yet
 * loads its own instead of the random ones its type's `init` makes. Optimizer slots
 * (and anything else `init` makes) stay as `init` makes them: a fresh optimizer.
 *
 * The record is read like any other (invariant 7): a VNode checks that it names exactly
 * its parameters, under its own keys, of the lengths its type makes, that the bytes hash
 * as recorded and every value is finite — else activation fails with a sentence saying
 * so (the host retries, then escalates), never with a misread tensor.
 */
import type { ResolvedModel, ResolvedVNode } from './model.js';
import { stateInitKey } from './protocol.js';
import type { BlobRef, StateStore } from './state-store.js';
import { firstNonFinite } from './tensor.js';
import type { Tensors } from './vnode-type.js';

/** What a deployment record says about its initial parameters. */
export interface InitialParameters {
  /** `paramsHash` of these parameters (trainer/evaluate.ts): the run's starting point. */
  paramsHash: string;
  /** Where they came from (the file's name), for people. */
  source?: string;
  /** Per VNode index, its parameters' blobs by parameter name (`{}` for a VNode without). */
  tensors: Array<Record<string, BlobRef>>;
}

/** Chunks of at least 64 KiB (state-store.ts `chunkBytesFor`): more than that for its length is not a blob anyone wrote. */
const plausibleChunks = (ref: BlobRef) => ref.chunks <= Math.ceil((ref.length * 4) / (64 * 1024));

/** Write every VNode's given parameters to KV; what the deployment record then holds. */
export async function writeInitialParameters(store: StateStore, model: ResolvedModel, tensors: Tensors[], about: Omit<InitialParameters, 'tensors'>): Promise<InitialParameters> {
  const dep = model.spec.name;
  const refs = await Promise.all(
    model.vnodes.map(async (v) => {
      const entries = await Promise.all((v.def.parameters ?? []).map(async (p) => [p, await store.writeBlob(stateInitKey(dep, v.index, p), tensors[v.index][p])] as const));
      return Object.fromEntries(entries);
    }),
  );
  return { ...about, tensors: refs };
}

/**
 * Delete the blobs a deployment record's initial parameters name (a fresh run replaces
 * them) — only those under the keys they must have: a record is untrusted, and must not
 * make us delete anything else.
 */
export async function removeInitialParameters(store: StateStore, deployment: string, init: InitialParameters | undefined): Promise<void> {
  if (!init) return;
  const own = init.tensors.flatMap((t, index) => Object.entries(t).filter(([p, ref]) => ref.key === stateInitKey(deployment, index, p) && plausibleChunks(ref)).map(([, ref]) => ref));
  await store.purgeBlobs(own);
}

/**
 * VNode `v`'s initial tensors: what its type's `init` made (`made`), with its parameters
 * replaced by the deployment's. @throws an Error naming what in the record is wrong.
 */
export async function loadInitialParameters(store: StateStore, deployment: string, v: ResolvedVNode, init: InitialParameters, made: Tensors): Promise<Tensors> {
  const where = `${deployment}.${v.index}: the deployment's initial parameters (${init.source ?? 'dcnr train --init'})`;
  if (v.index >= init.tensors.length) throw new Error(`${where} cover ${init.tensors.length} VNodes, not VNode ${v.index}`);
  const refs = init.tensors[v.index];
  const params = v.def.parameters ?? [];
  const names = Object.keys(refs);
  const missing = params.filter((p) => !(p in refs));
  const extra = names.filter((n) => !params.includes(n));
  if (missing.length > 0 || extra.length > 0) {
    throw new Error(`${where} name ${names.join(', ') || 'nothing'} for this ${v.def.type}, whose parameters are ${params.join(', ') || 'none'}`);
  }
  const out: Tensors = { ...made };
  await Promise.all(
    params.map(async (p) => {
      const ref = refs[p];
      const key = stateInitKey(deployment, v.index, p);
      if (ref.key !== key) throw new Error(`${where} keep ${p} under ${JSON.stringify(ref.key)}, not its own key ${key}`);
      const length = made[p]?.length;
      if (ref.length !== length) throw new Error(`${where} give ${p} ${ref.length} values; this ${v.def.type} has ${length}`);
      if (!plausibleChunks(ref)) throw new Error(`${where} split ${p} into ${ref.chunks} chunks, more than its ${ref.length} values can fill`);
      if (ref.sha256 === undefined) throw new Error(`${where} give ${p} no hash: refused (every initial parameter is hashed)`);
      const data = await store.readBlob(ref).catch((err: Error) => {
        throw new Error(`${where}: ${err.message}`);
      });
      const bad = firstNonFinite(data);
      if (bad >= 0) throw new Error(`${where}: ${p} has a non-finite value (${data[bad]}) at index ${bad}`);
      out[p] = data;
    }),
  );
  return out;
}
