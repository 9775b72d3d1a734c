/**
 * A `ServeBackend` whose parameters are held in this process: one version, the forward
 * pass through `forwardGraph` on real kernels. What `dcnr serve --store` can run without
 * a cluster, and what the serve tests run against.
 */
import '../actors/index.js';
import { createKernels, type Kernels } from '../runtime/kernels/index.js';
import type { ResolvedModel } from '../runtime/model.js';
import type { StateStore } from '../runtime/state-store.js';
import type { Tensor } from '../runtime/tensor.js';
import type { Tensors } from '../runtime/vnode-type.js';
import { forwardGraph, loadAllTensors, paramsHash } from '../trainer/evaluate.js';
import type { ServeBackend, ServedVersion } from './backend.js';

export interface LocalBackendOptions {
  model: ResolvedModel;
  /** Every VNode's tensors, in index order (as `loadAllTensors` returns them). */
  tensors: Tensors[];
  /** @default createKernels() (env `DCNR_KERNEL_MODE`, else auto) */
  kernels?: Kernels;
  /** The version's id in responses. @default `local-` + the first 12 hex digits of paramsHash */
  versionId?: string;
}

/** A local backend, and the tensors it serves. */
export interface LocalBackend extends ServeBackend {
  readonly tensors: Tensors[];
  readonly kernels: Kernels;
}

/**
 * Serve `tensors` from this process.
 * @example
 * const backend = await createLocalBackend({ model, tensors: await loadAllTensors(store, model) });
 * const server = await startServer({ backend, port: 0 });
 */
export async function createLocalBackend(o: LocalBackendOptions): Promise<LocalBackend> {
  const kernels = o.kernels ?? (await createKernels());
  const hash = paramsHash(o.model, o.tensors);
  const served: ServedVersion = { id: o.versionId ?? `local-${hash.slice(0, 12)}`, paramsHash: hash };
  let closed = false;
  return {
    model: o.model,
    tensors: o.tensors,
    kernels,
    // The reference kernels sum every output element on its own, in a fixed order;
    // OpenBLAS picks its micro-kernels by the row count, and a row's last bits follow
    // (docs/serving.md, "Batching and bits").
    rowExact: kernels.mode === 'js',
    version() {
      if (closed) throw new Error('the backend is closed');
      return served;
    },
    async forward(input: Tensor, version: ServedVersion, deadline: number): Promise<Tensor> {
      if (closed) throw new Error('the backend is closed');
      if (version.id !== served.id) throw new Error(`version ${version.id} is not held here (this backend serves ${served.id})`);
      if (Date.now() > deadline) throw new Error('the deadline passed before the forward pass started');
      return forwardGraph(kernels, o.model, o.tensors, input);
    },
    async close() {
      closed = true;
    },
  };
}

/** A local backend on the committed parameters of `model`'s deployment in `store`. */
export async function openLocalBackend(o: Omit<LocalBackendOptions, 'tensors'> & { store: StateStore }): Promise<LocalBackend> {
  return createLocalBackend({ ...o, tensors: await loadAllTensors(o.store, o.model) });
}
