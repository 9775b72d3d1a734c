/**
 * The ledger's records: one entry per checkpoint of a VNode, carrying a digest of every
 * message that checkpoint covers (docs/ledger.md). Entries of one VNode form a hash
 * chain (`prev`); the VNode's committed state names the newest (`StateMeta.ledger`), so
 * the chain that counts is the one its committed state reaches — an entry written by an
 * owner whose checkpoint then failed its compare-and-set is on no such chain (an orphan:
 * its updates did not happen).
 *
 * Hashes are sha256, base64url. A record on the stream is two lines: a seal
 * `{"hash", "signer"?, "signature"?}` and the entry's JSON text; the hash covers that
 * text exactly as stored, and with auth on the owner of its epoch signs the hash.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { MESSAGE_KINDS, parsePort, type MessageKind, type Port } from '../protocol.js';
import { signToText, verifySignature, type Signer } from '../security/signing.js';
import type { Tensor } from '../tensor.js';
import { toBytes } from '../tensor.js';

/** A tensor kept as evidence: content-addressed (runtime/ledger/evidence.ts). */
export interface EvidenceRef {
  /** sha256 of its bytes (little-endian float32). */
  sha: string;
  /** float32 elements. */
  length: number;
}

/** One applied message. */
export interface LedgerMessage {
  kind: MessageKind;
  port: Port;
  seq: number;
  /** The input tensor: its shape and bytes (evidence); null for `end`. */
  input: { shape: number[]; ref: EvidenceRef } | null;
  /** Digest of what it sent: each output's receiver, kind, port, shape and bytes, and a loss's value. */
  outputs: string;
  /** When it updated the VNode: the update's step and the digest of the parameters after it. */
  step?: number;
  params?: string;
  /** Kernel time it took, in ms (contribution accounting; not verified). */
  computeMs: number;
}

/** A VNode's whole state before its message number `at`: where a re-execution starts. */
export interface Anchor {
  at: number;
  /** Updates applied before it (the optimizer's step counter). */
  applied: number;
  tensors: Array<[string, EvidenceRef]>;
  /** Stash entries [seq, arrays] in key order. */
  stash: Array<[number, EvidenceRef[]]>;
}

export interface LedgerEntry {
  format: 1;
  deployment: string;
  generation: number;
  vnode: number;
  type: string;
  epoch: number;
  pnode: string;
  /** The kernel backend that computed it (a re-execution on another may differ in the last bits). */
  kernels: string;
  /** The VNode's message number of `messages[0]` (messages are numbered from 0 in the order applied). */
  from: number;
  messages: LedgerMessage[];
  anchors: Anchor[];
  /** Hash of the VNode's previous entry; null for its first. */
  prev: string | null;
}

/** As stored on the ledger stream. */
export interface LedgerRecord {
  entry: LedgerEntry;
  /** The entry's JSON text as stored (what `hash` covers). */
  text: string;
  hash: string;
  signer?: string;
  signature?: string;
}

const b64 = (h: ReturnType<typeof createHash>) => h.digest('base64url');

/** The hash of an entry's JSON text. */
export const entryHash = (text: string): string => b64(createHash('sha256').update('dcnr-ledger-v1\n').update(text));

/** An entry as it goes on the stream (signed with auth on). */
export function sealEntry(entry: LedgerEntry, signer: Signer | undefined): { record: LedgerRecord; bytes: Uint8Array } {
  const text = JSON.stringify(entry);
  const hash = entryHash(text);
  const seal = { hash, ...(signer ? { signer: signer.publicKey, signature: signToText(signer, Buffer.from(hash)) } : {}) };
  return { record: { entry, text, ...seal }, bytes: new TextEncoder().encode(`${JSON.stringify(seal)}\n${text}`) };
}

/** Whether a record's hash is its entry's, and (when it is signed) its signature is by `signer`. */
export function checkSeal(r: LedgerRecord): { hashOk: boolean; signed: boolean; signatureOk: boolean } {
  const hashOk = entryHash(r.text) === r.hash;
  const signed = r.signer !== undefined && r.signature !== undefined;
  return { hashOk, signed, signatureOk: signed && verifySignature(r.signer!, Buffer.from(r.hash), r.signature!) };
}

/** Arrays are immutable by convention (updates make new ones): a hash per array is computed once. */
const hashes = new WeakMap<Float32Array, string>();

/** sha256 of an array's bytes, cached per array. */
export function arrayHash(data: Float32Array): string {
  let h = hashes.get(data);
  if (h === undefined) hashes.set(data, (h = b64(createHash('sha256').update(toBytes(data)))));
  return h;
}

export const evidenceRef = (data: Float32Array): EvidenceRef => ({ sha: arrayHash(data), length: data.length });

/** Digest of a message's outputs (and a loss's value): what a re-execution must send again. */
export function outputsDigest(outputs: ReadonlyArray<{ to: number; kind: MessageKind; port: Port; tensor?: Tensor }>, loss?: number): string {
  const h = createHash('sha256');
  for (const o of outputs) h.update(`${o.to}:${o.kind}:${o.port}:${o.tensor ? `${o.tensor.shape.join('x')}:${arrayHash(o.tensor.data)}` : '-'}\n`);
  if (loss !== undefined) h.update(`loss:${loss}\n`);
  return b64(h);
}

/** Digest of a VNode's parameters: the tensors its type names as `parameters` (all of them, by name, if it names none). */
export function paramsDigest(tensors: Readonly<Record<string, Float32Array>>, parameters: readonly string[] | undefined): string {
  const names = parameters?.length ? parameters : Object.keys(tensors).sort();
  const h = createHash('sha256');
  for (const n of names) h.update(`${n}:${tensors[n] ? arrayHash(tensors[n]) : '-'}\n`);
  return b64(h);
}

const count = z.number().int().min(0);
const sha = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'not a sha256 (base64url)');
const ref = z.object({ sha, length: count }).strict();
export const messageSchema = z
  .object({
    kind: z.enum(MESSAGE_KINDS as [MessageKind, ...MessageKind[]]),
    port: z
      .string()
      .refine((p) => parsePort(p) !== null, 'not a port')
      .transform((p) => p as Port),
    seq: count,
    input: z.object({ shape: z.array(z.number().int().positive()).min(1).max(4), ref }).strict().nullable(),
    outputs: sha,
    step: z.number().int().positive().optional(),
    params: sha.optional(),
    computeMs: z.number().min(0),
  })
  .strict();
export const anchorSchema = z
  .object({ at: count, applied: count, tensors: z.array(z.tuple([z.string(), ref])), stash: z.array(z.tuple([z.number().int(), z.array(ref)])) })
  .strict();
const entrySchema = z
  .object({
    format: z.literal(1),
    deployment: z.string().min(1),
    generation: count,
    vnode: count,
    type: z.string(),
    epoch: count,
    pnode: z.string(),
    kernels: z.string(),
    from: count,
    messages: z.array(messageSchema),
    anchors: z.array(anchorSchema),
    prev: sha.nullable(),
  })
  .strict();
const sealSchema = z.object({ hash: sha, signer: z.string().optional(), signature: z.string().optional() }).strict();

/** A segment of a VNode's ledger sent to an auditor (supervisor/audit.ts → runtime/pnode/audit.ts; parsed by records.ts). */
export interface AuditRequest {
  deployment: string;
  generation: number;
  vnode: number;
  anchor: Anchor;
  messages: LedgerMessage[];
}

export interface AuditReply {
  ok: boolean;
  /** Messages run again. */
  recomputed: number;
  /** The first message that did not come out as recorded. */
  mismatch?: { seq: number; kind: string; reason: string };
  /** The request could not be audited (bad request, evidence gone, no such deployment). */
  error?: string;
}

/** A stored record, or why it is not one (never a throw: anyone may have written it). */
export function parseLedgerRecord(data: Uint8Array): { ok: true; record: LedgerRecord } | { ok: false; error: string } {
  const all = new TextDecoder().decode(data);
  const cut = all.indexOf('\n');
  if (cut < 0) return { ok: false, error: 'not a ledger record: no seal line' };
  const text = all.slice(cut + 1);
  let seal: unknown;
  let entry: unknown;
  try {
    seal = JSON.parse(all.slice(0, cut));
    entry = JSON.parse(text);
  } catch {
    return { ok: false, error: 'not a ledger record: not JSON' };
  }
  const s = sealSchema.safeParse(seal);
  const e = entrySchema.safeParse(entry);
  const bad = !s.success ? s.error : !e.success ? e.error : null;
  if (bad) {
    const first = bad.issues[0];
    return { ok: false, error: `not a ledger record: ${!s.success ? 'seal' : 'entry'}.${first.path.join('.') || '(root)'}: ${first.message}` };
  }
  return { ok: true, record: { ...s.data!, entry: e.data as LedgerEntry, text } };
}
