/**
 * Inference through the VNodes (docs/serving.md): a forward-only request to one VNode,
 * answered by the PNode that owns it from a pinned parameter version. No stash, no
 * update, no mailbox: core NATS request/reply on `dcnr.infer.<dep>.<index>`, so it never
 * touches the training schedule, the checkpoints or `paramsHash`.
 *
 * Wire format of a request and of a reply (both directions):
 *   u32 LE  header length H
 *   H bytes JSON header (request: InferRequestHeader; reply: InferReplyHeader), padded with spaces to a multiple of 4
 *   float32 LE data: the tensors of the header's shapes, one after the other
 * Everything is validated on receipt (invariant 7): a bad request gets an error reply,
 * never a crash.
 */
import { z } from 'zod';
import type { Kernels } from './kernels/types.js';
import type { ResolvedVNode } from './model.js';
import { Limits } from './protocol.js';
import { firstNonFinite, fromBytes, sizeOf, toBytes, type Tensor } from './tensor.js';
import type { LossDefinition, MergeDefinition, Tensors, TransformDefinition } from './vnode-type.js';

/** Subject of VNode `index`'s inference requests (core NATS, queue group INFER_QUEUE). */
export const inferSubject = (deployment: string, index: number) => `dcnr.infer.${deployment}.${index}`;
export const INFER_QUEUE = 'dcnr-infer';

export interface InferRequestHeader {
  v: 1;
  /** The deployment's generation the version belongs to. */
  generation: number;
  /** The served version: parameters after this update step (docs/serving.md). */
  step: number;
  /** One shape per input of the VNode (a merge has several). */
  shapes: number[][];
}

export type InferReplyHeader = { v: 1; shape: number[] } | { v: 1; error: string };

const shapeSchema = z.array(z.number().int().min(1).max(1 << 24)).min(1).max(4);
const requestSchema = z.object({ v: z.literal(1), generation: z.number().int().min(0), step: z.number().int().min(0), shapes: z.array(shapeSchema).min(1).max(16) }).strict();
const replySchema = z.union([z.object({ v: z.literal(1), shape: shapeSchema }).strict(), z.object({ v: z.literal(1), error: z.string() }).strict()]);

function frame(header: object, tensors: Float32Array[]): Uint8Array {
  let json = JSON.stringify(header);
  json += ' '.repeat((4 - ((4 + Buffer.byteLength(json)) % 4)) % 4);
  const head = Buffer.from(json);
  const dataBytes = tensors.reduce((n, t) => n + t.byteLength, 0);
  const out = new Uint8Array(4 + head.byteLength + dataBytes);
  new DataView(out.buffer).setUint32(0, head.byteLength, true);
  out.set(head, 4);
  let at = 4 + head.byteLength;
  for (const t of tensors) {
    out.set(toBytes(t), at);
    at += t.byteLength;
  }
  return out;
}

function unframe(bytes: Uint8Array, max: number): { header: unknown; data: Float32Array } | string {
  if (bytes.byteLength < 4) return `${bytes.byteLength} bytes: too short for a header length`;
  if (bytes.byteLength > max) return `${bytes.byteLength} bytes: over the ${max}-byte limit`;
  const h = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
  if (h > bytes.byteLength - 4 || h > 64 * 1024) return `header length ${h} does not fit the ${bytes.byteLength}-byte message`;
  if ((bytes.byteLength - 4 - h) % 4 !== 0) return 'the data is not a whole number of float32s';
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(bytes.subarray(4, 4 + h)).toString('utf8'));
  } catch {
    return 'the header is not JSON';
  }
  return { header, data: fromBytes(bytes.subarray(4 + h)) };
}

const issues = (e: z.ZodError) => e.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');

export const encodeInferRequest = (h: Omit<InferRequestHeader, 'v' | 'shapes'>, inputs: Tensor[]): Uint8Array =>
  frame({ v: 1, ...h, shapes: inputs.map((t) => t.shape) }, inputs.map((t) => t.data));

/** A request as a VNode host takes it: its header and input tensors, or why not (one sentence). */
export function decodeInferRequest(bytes: Uint8Array, maxBytes = Limits.maxTensorBytes): { header: InferRequestHeader; inputs: Tensor[] } | string {
  const f = unframe(bytes, maxBytes);
  if (typeof f === 'string') return `bad inference request: ${f}`;
  const r = requestSchema.safeParse(f.header);
  if (!r.success) return `bad inference request header: ${issues(r.error)}`;
  const inputs: Tensor[] = [];
  let at = 0;
  for (const shape of r.data.shapes) {
    const n = sizeOf(shape);
    if (at + n > f.data.length) return `bad inference request: shapes [${r.data.shapes.map((s) => `[${s}]`)}] need more than the ${f.data.length} values sent`;
    inputs.push({ shape, data: f.data.subarray(at, at + n) });
    at += n;
  }
  if (at !== f.data.length) return `bad inference request: ${f.data.length - at} values beyond the shapes`;
  const bad = firstNonFinite(f.data);
  if (bad >= 0) return `bad inference request: value ${bad} is ${f.data[bad]} (inputs must be finite)`;
  return { header: r.data, inputs };
}

export const encodeInferReply = (y: Tensor): Uint8Array => frame({ v: 1, shape: y.shape }, [y.data]);
export const encodeInferError = (error: string): Uint8Array => frame({ v: 1, error: error.slice(0, 2000) }, []);

/** A reply as the caller takes it. Throws InferError for an error reply or a malformed one. */
export function decodeInferReply(bytes: Uint8Array): Tensor {
  const f = unframe(bytes, Number.MAX_SAFE_INTEGER);
  if (typeof f === 'string') throw new InferError(`malformed inference reply: ${f}`, false);
  const r = replySchema.safeParse(f.header);
  if (!r.success) throw new InferError(`malformed inference reply header: ${issues(r.error)}`, false);
  if ('error' in r.data) throw new InferError(r.data.error, true);
  if (sizeOf(r.data.shape) !== f.data.length) throw new InferError(`malformed inference reply: shape [${r.data.shape}] but ${f.data.length} values`, false);
  return { shape: r.data.shape, data: f.data };
}

/** An inference hop that failed. `fromHost`: the owner answered with this error (else the reply was garbage). */
export class InferError extends Error {
  constructor(
    message: string,
    readonly fromHost: boolean,
  ) {
    super(message);
  }
}

/**
 * One VNode's forward-only output for its inputs `xs` (a merge takes all of them), with
 * parameters `tensors`: a loss gives its `predict` (probabilities for a softmax). Nothing
 * is kept for a backward. What trainer/evaluate.ts `forwardGraph` runs per VNode, and
 * what a PNode answers an inference request with (runtime/pnode/inference.ts).
 */
export async function forwardVNode(k: Kernels, v: ResolvedVNode, tensors: Tensors, xs: Tensor[]): Promise<Tensor> {
  const ctx = { k, config: v.config, inFeatures: v.inFeatures, outFeatures: v.outFeatures };
  if (v.def.role === 'loss') {
    const def = v.def as LossDefinition<unknown>;
    return def.predict ? def.predict(ctx, xs[0]) : xs[0];
  }
  if (v.def.role === 'merge') return (await (v.def as MergeDefinition<unknown>).forward(ctx, tensors, xs)).y;
  return (await (v.def as TransformDefinition<unknown>).forward(ctx, tensors, xs[0])).y;
}

