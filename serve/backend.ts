/**
 * What the HTTP layer of `dcnr serve` runs a forward pass with (docs/serving.md).
 * (Placeholder until the HTTP layer lands: the same interface.)
 */
import type { ResolvedModel } from '../runtime/model.js';
import type { Tensor } from '../runtime/tensor.js';

export interface ServedVersion {
  id: string;
  paramsHash: string;
}

export interface ServeBackend {
  model: ResolvedModel;
  /** The version requests are answered from now (pinned, or the latest committed). */
  version(): ServedVersion;
  /** The model's output (the loss VNode's predict) for `input`, all from `version`. */
  forward(input: Tensor, version: ServedVersion, deadline: number): Promise<Tensor>;
  close(): Promise<void>;
}
