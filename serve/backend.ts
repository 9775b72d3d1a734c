/**
 * What `dcnr serve`'s HTTP layer asks of the thing that runs the model: which
 * parameter version answers now, and the forward pass of a batch of rows on one
 * version. Two implementations: `local-backend.ts` (the parameters in this process) and
 * the cluster's (the forward through the VNodes over NATS, pinned versions).
 */
import type { ResolvedModel } from '../runtime/model.js';
import type { Tensor } from '../runtime/tensor.js';

/** A committed set of parameters requests are answered from. */
export interface ServedVersion {
  /** What `paramsVersion` says in responses and `/metrics`. */
  id: string;
  /** `paramsHash` (trainer/evaluate.ts) of those parameters. */
  paramsHash: string;
}

export interface ServeBackend {
  /** `resolveModel(...)` of the deployment's spec. */
  model: ResolvedModel;
  /**
   * The version requests are answered from now (pinned, or the latest committed).
   * Throws an Error whose message is a one-line reason when the backend cannot answer
   * (`/healthz` says 503 with it; a request gets 503). Called for every request and
   * every batch: keep it cheap (no IO; follow the latest version in the background).
   */
  version(): ServedVersion;
  /**
   * The model's output (the loss VNode's predict: probabilities for softmax CE) for
   * `input`, rows = input.shape[0], all from `version`. `deadline` is a `Date.now()`
   * time after which the answer is of no use: the backend may give up then (rejecting).
   * Rejects with a one-line reason on any failure.
   */
  forward(input: Tensor, version: ServedVersion, deadline: number): Promise<Tensor>;
  /**
   * Row r of `forward`'s output depends only on row r of its input, bit for bit,
   * whatever the other rows; and for a language model, the outputs at a window's
   * positions do not change when the window is right-padded (the model is causal). True
   * for the `js` kernels (measured on names-gpt and mnist-mlp); false for OpenBLAS,
   * whose sgemm gives a row other last bits (≤ 2e-7 on mnist-mlp's probabilities) in a
   * matrix of another row count. The server batches generate's token forwards across
   * requests only when true, so that `/v1/generate` always gives the text `dcnr
   * generate` gives. @default false
   */
  rowExact?: boolean;
  close(): Promise<void>;
}
