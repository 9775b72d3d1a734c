/**
 * Durable VNode state in JetStream KV, written only by compare-and-set (invariant 1).
 *
 * Layout (bucket `dcnr_state`):
 *   `<dep>.<i>.meta`                      JSON StateMeta: epoch, machine snapshot, manifest
 *   `<dep>.<i>.t.<name>.<epoch>.<ver>.<nonce>`  raw float32 bytes of one tensor (or `.c<k>` chunks)
 *   `<dep>.<i>.v.<step>`                  JSON VersionRecord: the parameters after update `step`,
 *   `<dep>.<i>.v.<step>.<name>`           kept for serving (docs/serving.md); written before the
 *                                         meta CAS of the checkpoint that covers `step`
 *
 * Tensor blobs are immutable and named by (epoch, write version, a nonce of the write), so no
 * other write — a fenced owner's, a restarted one's, an earlier run's — can overwrite or purge them. A write puts new blobs
 * first, then CAS-updates the meta on the revision its writer last saw; only that
 * CAS commits. A failed CAS means someone else (a newer owner) wrote: the writer is
 * fenced. Blobs the new meta no longer names are deleted after the commit (a delete
 * marker replaces the value: the bucket keeps one revision per key).
 * Blobs larger than a KV value may be (1 MiB by default) are split into chunks.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import pLimit from 'p-limit';
import { z } from 'zod';
import type { OutboxEntry } from './outbox.js';
import { Bucket, Limits, ownerKey, PORT_OF_KIND, stateBlobKey, stateMetaKey, type MessageKind, type Port } from './protocol.js';
import { parseStateMeta, type RejectRecord } from './records.js';
import { metaDigest, signToText, verifySignature, type Signer } from './security/signing.js';
import { fromBytes, toBytes } from './tensor.js';

/** Where one tensor's bytes are. */
export interface BlobRef {
  key: string;
  /** Number of float32 elements. */
  length: number;
  /** 0 = stored whole under `key`; n > 0 = under `key.c0` … `key.c{n-1}`. */
  chunks: number;
  /** With auth on: sha256 (base64url) of the bytes, covered by the meta's signature. */
  sha256?: string;
}

/**
 * Auth on: every meta this store writes is signed, and a meta is valid only when it
 * is signed by the owner of its epoch (and its blobs hash as it says). A meta anyone
 * else wrote is junk: never loaded, written over by the owner's next commit.
 */
export interface StateAuth {
  signer: Signer;
  ownerKey(deployment: string, generation: number, index: number, epoch: number): Promise<string | null>;
}

/** The committed record of a VNode's state. */
export interface StateMeta {
  format: 1;
  deployment: string;
  index: number;
  type: string;
  typeVersion: number;
  /** Deployment generation (KV revision of its record) the state belongs to. */
  generation: number;
  /** Epoch of the owner that wrote it. */
  epoch: number;
  /** Write counter; names this write's blobs. */
  version: number;
  /** xstate persisted snapshot of the VNode machine. */
  snapshot: unknown;
  tensors: Record<string, BlobRef>;
  /** Per seq, the arrays a forward kept for its backward. */
  stash: Record<string, BlobRef[]>;
  /** Outputs handed to receivers in this process in memory only, not yet covered by theirs (runtime/outbox.ts). Absent: none. */
  outbox?: OutboxRecord[];
  /** The VNode's ledger (runtime/ledger/): messages recorded, and the hash of its newest entry. Absent: no ledger. */
  ledger?: LedgerHead;
  updatedAt: string;
}

/** Where a VNode's ledger chain ends: what its committed state covers. */
export interface LedgerHead {
  /** Messages recorded (the next one's number). */
  count: number;
  /** Hash of the newest entry; null before the first. */
  head: string | null;
}

/** An outbox entry as stored: its tensor as a blob (none for `end`). */
export interface OutboxRecord {
  to: number;
  kind: MessageKind;
  /** The receiver's port when it is not the kind's slot-0 port (runtime/outbox.ts). */
  port?: Port;
  seq: number;
  shape?: number[];
  blob?: BlobRef;
}

/** A meta as read, with the KV revision to CAS against. */
export interface Committed {
  meta: StateMeta;
  revision: number;
}

/** Thrown when a CAS fails: a newer owner has written. */
export class FencedError extends Error {
  constructor(
    readonly key: string,
    detail: string,
  ) {
    super(`fenced: ${key} was written by a newer owner (${detail})`);
    this.name = 'FencedError';
  }
}

const isCasConflict = (err: unknown) => /wrong last sequence|key exists/i.test(String((err as Error)?.message ?? err));

/** What a write stores. Arrays whose identity is unchanged since the last write are not re-sent. */
export interface StateWrite {
  generation: number;
  epoch: number;
  type: string;
  typeVersion: number;
  snapshot: unknown;
  tensors: Record<string, Float32Array>;
  stash: Map<number, Float32Array[]>;
  /** @default none */
  outbox?: readonly OutboxEntry[];
  /** Parameters after these updates, to keep as served versions (docs/serving.md). @default none */
  versions?: readonly ParamsVersion[];
  /** The ledger head this state covers (its entry is stored before the write). @default no ledger */
  ledger?: LedgerHead;
}

/** A VNode's parameters right after its update `step` (the arrays, never copied: updates make new ones). */
export interface ParamsVersion {
  step: number;
  tensors: Record<string, Float32Array>;
}

/** A served version of one VNode's parameters (`<dep>.<i>.v.<step>`). */
export interface VersionRecord {
  format: 1;
  deployment: string;
  index: number;
  generation: number;
  /** Written by the owner of this epoch (auth on: signed by it). */
  epoch: number;
  step: number;
  tensors: Record<string, BlobRef>;
}

/** Served versions a VNode keeps: the newest this many (older ones are deleted as new ones come). */
export const VERSIONS_KEPT = 8;

/**
 * Blob bytes in flight per store (so per process): 32 MiB, in as many KV operations as
 * chunks of that size fit (32 of 1 MiB, 8 of 4 MiB). Why a bound: a big layer is
 * hundreds of chunks; put all at once (times every VNode of a PNode checkpointing
 * together) and the server's queue outgrows the 5 s JetStream publish timeout —
 * measured: a 50M-parameter model could not persist at all.
 */
const BLOB_BYTES_IN_FLIGHT = 32 * 1024 * 1024;

/** KV blob chunk size for a connection: under the server's max payload with room for headers. */
export function chunkBytesFor(nc: NatsConnection): number {
  const max = nc.info?.max_payload ?? 1024 * 1024;
  return Math.max(64 * 1024, Math.min(max - 64 * 1024, 4 * 1024 * 1024));
}

export class StateStore {
  /**
   * Blob each array was last written as, per VNode (`deployment.index`); lets a write skip
   * unchanged tensors. Per VNode because VNodes of one process share arrays (an output
   * handed over in memory is the receiver's input and stash, and the sender's outbox
   * entry), and a VNode purges its own blobs when it no longer needs them: a blob
   * must never be referenced by another VNode's record.
   */
  readonly #written = new WeakMap<Float32Array, Map<string, BlobRef>>();

  #known(owner: string, data: Float32Array): BlobRef | undefined {
    return this.#written.get(data)?.get(owner);
  }

  #remember(owner: string, data: Float32Array, ref: BlobRef): void {
    let m = this.#written.get(data);
    if (!m) this.#written.set(data, (m = new Map()));
    m.set(owner, ref);
  }
  readonly #chunkBytes: number;
  readonly #io: ReturnType<typeof pLimit>;

  readonly #reject: RejectRecord | undefined;
  #bytesWritten = 0;

  /** Bytes this store has written to KV (blobs and metas): what persistence costs. */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  readonly #auth: StateAuth | undefined;

  constructor(
    readonly kv: KV,
    opts: { chunkBytes?: number; reject?: RejectRecord; auth?: StateAuth } = {},
  ) {
    this.#auth = opts.auth;
    this.#chunkBytes = opts.chunkBytes ?? Limits.kvChunkBytes;
    this.#io = pLimit(Math.max(2, Math.floor(BLOB_BYTES_IN_FLIGHT / this.#chunkBytes)));
    this.#reject = opts.reject;
  }

  /**
   * The committed meta of a VNode, or null if it has none. A value under the meta key
   * that is not a meta of this VNode (anyone can write one) is reported and reads as
   * `damaged`: a reader must neither trust it nor take it for "no state".
   */
  async read(deployment: string, index: number): Promise<Committed | null> {
    const r = await this.#readMeta(deployment, index);
    if (r === null || 'meta' in r) return r;
    throw new Error(`state of ${deployment}.${index} is damaged: ${r.error}`);
  }

  /** Like `read`, but a damaged meta is returned as `{ revision, error }` instead of thrown. */
  async #readMeta(deployment: string, index: number): Promise<Committed | { revision: number; error: string } | null> {
    const key = stateMetaKey(deployment, index);
    const entry = await this.kv.get(key);
    if (!entry || entry.operation !== 'PUT' || entry.length === 0) return null;
    const parsed = parseStateMeta(entry.value);
    let error = parsed.ok ? null : parsed.error;
    if (parsed.ok && (parsed.value.deployment !== deployment || parsed.value.index !== index)) error = `it is the meta of ${parsed.value.deployment}.${parsed.value.index}`;
    if (error === null && parsed.ok && this.#auth) error = await this.#unsigned(entry.value, parsed.value);
    if (error === null && parsed.ok) return { meta: parsed.value, revision: entry.revision };
    this.#reject?.(Bucket.State, key, entry.revision, error!);
    return { revision: entry.revision, error: error! };
  }

  /** Load every tensor and stash array a meta names. */
  async load(meta: StateMeta): Promise<{ tensors: Record<string, Float32Array>; stash: Map<number, Float32Array[]>; outbox: OutboxEntry[] }> {
    const owner = ownerKey(meta.deployment, meta.index);
    const tensors: Record<string, Float32Array> = {};
    await Promise.all(
      Object.entries(meta.tensors).map(async ([name, ref]) => {
        tensors[name] = await this.#readBlob(ref);
        // Already stored as `ref`: the next write need not send it again.
        this.#remember(owner, tensors[name], ref);
      }),
    );
    const stash = new Map<number, Float32Array[]>();
    await Promise.all(
      Object.entries(meta.stash).map(async ([seq, refs]) => {
        const arrays = await Promise.all(refs.map((r) => this.#readBlob(r)));
        arrays.forEach((a, i) => this.#remember(owner, a, refs[i]));
        stash.set(Number(seq), arrays);
      }),
    );
    const outbox = await Promise.all(
      (meta.outbox ?? []).map(async (r): Promise<OutboxEntry> => {
        const port = r.port ? { port: r.port } : {};
        if (!r.blob || !r.shape) return { to: r.to, kind: r.kind, seq: r.seq, ...port };
        const data = await this.#readBlob(r.blob);
        if (r.shape.reduce((a, b) => a * b, 1) !== data.length) throw new Error(`outbox blob ${r.blob.key} holds ${data.length} values, its shape [${r.shape}] says otherwise`);
        this.#remember(owner, data, r.blob);
        return { to: r.to, kind: r.kind, seq: r.seq, ...port, tensor: { shape: r.shape, data } };
      }),
    );
    return { tensors, stash, outbox };
  }

  /**
   * Commit a new state. `prev` is what this writer last committed or read (null: the
   * VNode has no state yet, and creating it must not race another creator).
   * @throws FencedError when another writer committed since `prev`.
   */
  async write(deployment: string, index: number, prev: Committed | null, next: StateWrite): Promise<Committed> {
    const version = (prev?.meta.version ?? 0) + 1;
    const nonce = randomBytes(4).toString('hex');
    const owner = ownerKey(deployment, index);
    const fresh: Array<{ data: Float32Array; ref: BlobRef }> = [];
    const put = async (name: string, data: Float32Array): Promise<BlobRef> => {
      const known = this.#known(owner, data);
      if (known) return known;
      const ref = await this.#writeBlob(stateBlobKey(deployment, index, name, next.epoch, version, nonce), data);
      fresh.push({ data, ref });
      this.#remember(owner, data, ref);
      return ref;
    };
    const tensors: Record<string, BlobRef> = {};
    const stash: Record<string, BlobRef[]> = {};
    const outbox: OutboxRecord[] = [];
    await Promise.all([
      ...(next.outbox ?? []).map(async (e) => {
        const r: OutboxRecord = { to: e.to, kind: e.kind, seq: e.seq, ...(e.port && e.port !== PORT_OF_KIND[e.kind] ? { port: e.port } : {}) };
        outbox.push(r);
        if (e.tensor) {
          r.shape = e.tensor.shape;
          r.blob = await put(`o${e.to}_${r.port ?? e.kind}${e.seq}`, e.tensor.data);
        }
      }),
      ...Object.entries(next.tensors).map(async ([name, data]) => {
        tensors[name] = await put(name, data);
      }),
      ...[...next.stash].map(async ([seq, arrays]) => {
        stash[seq] = await Promise.all(arrays.map((a, i) => put(`s${seq}_${i}`, a)));
      }),
    ]);
    // Served versions before the meta: a committed checkpoint never covers a version that is
    // not stored. One written by a writer that is then fenced is harmless: the same update
    // gives the same bytes whoever computes it (determinism), so its new owner writes it again alike.
    for (const v of next.versions ?? []) await this.#writeVersion(deployment, index, next, v);
    const meta: StateMeta = {
      format: 1,
      deployment,
      index,
      type: next.type,
      typeVersion: next.typeVersion,
      generation: next.generation,
      epoch: next.epoch,
      version,
      snapshot: next.snapshot,
      tensors,
      stash,
      ...(outbox.length > 0 ? { outbox } : {}),
      ...(next.ledger ? { ledger: next.ledger } : {}),
      updatedAt: new Date().toISOString(),
    };
    const key = stateMetaKey(deployment, index);
    const text = JSON.stringify(meta);
    const bytes = new TextEncoder().encode(this.#auth ? JSON.stringify({ ...meta, signer: this.#auth.signer.publicKey, signature: signToText(this.#auth.signer, metaDigest(text)) }) : text);
    this.#bytesWritten += bytes.byteLength;
    let revision: number | undefined;
    let expected = prev ? prev.revision : null;
    for (let attempt = 0; revision === undefined; attempt++) {
      try {
        revision = expected !== null ? await this.kv.update(key, bytes, expected) : await this.kv.create(key, bytes);
      } catch (err) {
        if (!isCasConflict(err)) throw err;
        // Someone wrote since `prev`. Any valid meta of this VNode means our state is
        // stale — a newer owner took over, or (at a takeover) the old owner committed once
        // more after we read — so we are fenced (activation re-reads and retries). Only a
        // value that is not a meta at all (junk anyone wrote) is written over, by CAS on its
        // revision: the owner's state in memory is the truth it replaced.
        const now = await this.#readMeta(deployment, index);
        if (now === null || 'meta' in now || attempt >= 3) {
          // Our blobs are named by our epoch and version: nobody else references them. They
          // are gone, so no later write may take those arrays for written.
          for (const f of fresh) this.#written.get(f.data)?.delete(owner);
          await this.#purgeRefs(fresh.map((f) => f.ref));
          throw new FencedError(key, String((err as Error).message));
        }
        expected = now.revision;
      }
    }
    if (prev) {
      const live = new Set(blobKeys(meta));
      await this.#purgeRefs(blobRefs(prev.meta).filter((r) => !live.has(r.key)));
    }
    return { meta, revision };
  }

  /** Remove a VNode's state entirely (a fresh run of a deployment), its served versions too. */
  async remove(deployment: string, index: number): Promise<void> {
    const committed = await this.read(deployment, index);
    if (committed) await this.#purgeRefs(blobRefs(committed.meta));
    await this.kv.delete(stateMetaKey(deployment, index)).catch(() => {});
    for (const step of await this.versionSteps(deployment, index)) await this.#deleteVersion(deployment, index, step);
  }

  async #writeVersion(deployment: string, index: number, next: StateWrite, v: ParamsVersion): Promise<void> {
    const key = versionKey(deployment, index, v.step);
    const tensors: Record<string, BlobRef> = {};
    await Promise.all(Object.entries(v.tensors).map(async ([name, data]) => (tensors[name] = await this.#writeBlob(`${key}.${name}`, data))));
    const record: VersionRecord = { format: 1, deployment, index, generation: next.generation, epoch: next.epoch, step: v.step, tensors };
    const text = JSON.stringify(record);
    const bytes = new TextEncoder().encode(this.#auth ? JSON.stringify({ ...record, signer: this.#auth.signer.publicKey, signature: signToText(this.#auth.signer, metaDigest(text)) }) : text);
    this.#bytesWritten += bytes.byteLength;
    await this.#io(() => this.kv.put(key, bytes));
    // Retention: the newest VERSIONS_KEPT (listing keys is a consumer round trip: once per version, not per message).
    const steps = await this.versionSteps(deployment, index);
    for (const old of steps.slice(0, Math.max(0, steps.length - VERSIONS_KEPT))) await this.#deleteVersion(deployment, index, old);
  }

  async #deleteVersion(deployment: string, index: number, step: number): Promise<void> {
    const found = await this.readVersionRecord(deployment, index, step).catch(() => null);
    if (found && typeof found !== 'string') await this.#purgeRefs(Object.values(found.tensors));
    await this.#io(() => this.kv.delete(versionKey(deployment, index, step))).catch(() => {});
  }

  /** The steps of a VNode's stored served versions, ascending. */
  async versionSteps(deployment: string, index: number): Promise<number[]> {
    const steps: number[] = [];
    const prefix = `${deployment}.${index}.v.`;
    for await (const k of await this.kv.keys(`${prefix}*`)) {
      const step = Number(k.slice(prefix.length));
      if (Number.isSafeInteger(step) && step > 0) steps.push(step);
    }
    return steps.sort((a, b) => a - b);
  }

  /** A VNode's served version `step` as stored: its record, or why it cannot be used (never a throw for bad bytes). */
  async readVersionRecord(deployment: string, index: number, step: number): Promise<VersionRecord | string | null> {
    const key = versionKey(deployment, index, step);
    const e = await this.#io(() => this.kv.get(key));
    if (!e || e.operation !== 'PUT' || e.length === 0) return null;
    const parsed = parseVersionRecord(e.value);
    if (typeof parsed === 'string') return `${key}: ${parsed}`;
    if (parsed.deployment !== deployment || parsed.index !== index || parsed.step !== step) return `${key}: names ${parsed.deployment}.${parsed.index} step ${parsed.step}`;
    if (this.#auth) {
      const { signer, signature, ...rest } = JSON.parse(new TextDecoder().decode(e.value)) as Record<string, unknown>;
      if (typeof signer !== 'string' || typeof signature !== 'string') return `${key}: unsigned: this network requires versions signed by their VNode's owner`;
      if (!verifySignature(signer, metaDigest(JSON.stringify(rest)), signature)) return `${key}: bad signature`;
      const owner = await this.#auth.ownerKey(deployment, parsed.generation, index, parsed.epoch);
      if (owner !== signer) return `${key}: not written by the owner of epoch ${parsed.epoch}`;
      if (Object.values(parsed.tensors).some((r) => r.sha256 === undefined)) return `${key}: a blob without a hash`;
    }
    return parsed;
  }

  /** The parameters of a served version (blobs checked against the record). */
  async loadVersion(record: VersionRecord): Promise<Record<string, Float32Array>> {
    const out: Record<string, Float32Array> = {};
    await Promise.all(Object.entries(record.tensors).map(async ([name, ref]) => (out[name] = await this.#readBlob(ref))));
    return out;
  }

  /**
   * Write one immutable blob outside any VNode's meta (chunked like state blobs), always
   * hashed: whoever reads it back through `readBlob` gets exactly these bytes or an error.
   * Used for a deployment's initial parameters (runtime/initial-parameters.ts).
   */
  writeBlob(key: string, data: Float32Array): Promise<BlobRef & { sha256: string }> {
    return this.#writeBlob(key, data, true) as Promise<BlobRef & { sha256: string }>;
  }

  /** Read a blob `writeBlob` (or a state write) made; its length, and its hash when it has one, are checked. */
  readBlob(ref: BlobRef): Promise<Float32Array> {
    return this.#readBlob(ref);
  }

  /** Delete blobs (garbage collection: a failure leaves an orphan, never a wrong state). */
  purgeBlobs(refs: BlobRef[]): Promise<void> {
    return this.#purgeRefs(refs);
  }

  async #writeBlob(key: string, data: Float32Array, hashed = !!this.#auth): Promise<BlobRef> {
    const bytes = toBytes(data);
    this.#bytesWritten += bytes.byteLength;
    const hash = hashed ? { sha256: sha256Of([bytes]) } : {};
    if (bytes.byteLength <= this.#chunkBytes) {
      await this.#io(() => this.kv.put(key, bytes));
      return { key, length: data.length, chunks: 0, ...hash };
    }
    const chunks = Math.ceil(bytes.byteLength / this.#chunkBytes);
    await Promise.all(
      Array.from({ length: chunks }, (_, c) =>
        this.#io(() => this.kv.put(`${key}.c${c}`, bytes.subarray(c * this.#chunkBytes, (c + 1) * this.#chunkBytes))),
      ),
    );
    return { key, length: data.length, chunks, ...hash };
  }

  /** Null when the meta's bytes are signed by the owner of its epoch and its blobs are hashed; else why not. */
  async #unsigned(raw: Uint8Array, meta: StateMeta): Promise<string | null> {
    const { signer, signature, ...rest } = JSON.parse(new TextDecoder().decode(raw)) as Record<string, unknown>;
    if (typeof signer !== 'string' || typeof signature !== 'string') return 'unsigned: this network requires state signed by its owner';
    if (!verifySignature(signer, metaDigest(JSON.stringify(rest)), signature)) return `bad signature from ${signer.slice(0, 12)}…`;
    const owner = await this.#auth!.ownerKey(meta.deployment, meta.generation, meta.index, meta.epoch);
    if (owner !== signer) return `not written by the owner of epoch ${meta.epoch} (signed by ${signer.slice(0, 12)}…)`;
    if (blobRefs(meta).some((r) => r.sha256 === undefined)) return 'a blob without a hash';
    return null;
  }

  async #readBlob(ref: BlobRef): Promise<Float32Array> {
    const keys = ref.chunks === 0 ? [ref.key] : Array.from({ length: ref.chunks }, (_, c) => `${ref.key}.c${c}`);
    const parts = await Promise.all(
      keys.map(async (k) => {
        const e = await this.#io(() => this.kv.get(k));
        if (!e || e.operation !== 'PUT') throw new Error(`state blob ${k} is missing: the store is damaged`);
        return e.value;
      }),
    );
    const total = parts.reduce((n, p) => n + p.byteLength, 0);
    if (total !== ref.length * 4) throw new Error(`state blob ${ref.key} has ${total} bytes, expected ${ref.length * 4}`);
    // Auth on: every blob is hashed (the meta's signature covers it). A blob with a hash is checked either way.
    if ((this.#auth || ref.sha256 !== undefined) && ref.sha256 !== sha256Of(parts)) throw new Error(`state blob ${ref.key} does not hash as its ${this.#auth ? 'signed meta' : 'record'} says: it was overwritten`);
    if (parts.length === 1) return fromBytes(parts[0]);
    const joined = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      joined.set(p, at);
      at += p.byteLength;
    }
    return fromBytes(joined);
  }

  async #purgeRefs(refs: Array<Pick<BlobRef, 'key'> & Partial<BlobRef>>): Promise<void> {
    const keys = refs.flatMap((r) => (r.chunks ? Array.from({ length: r.chunks }, (_, c) => `${r.key}.c${c}`) : [r.key]));
    // Garbage collection only: a failed purge leaves an orphan blob, never a wrong state.
    await Promise.all(keys.map((k) => this.#io(() => this.kv.delete(k)).catch(() => {})));
  }
}

const versionKey = (deployment: string, index: number, step: number) => `${deployment}.${index}.v.${step}`;

const blobRefSchema = z.object({ key: z.string().min(1), length: z.number().int().min(0), chunks: z.number().int().min(0).max(1_000_000), sha256: z.string().optional() }).strict();
const versionRecordSchema = z
  .object({
    format: z.literal(1),
    deployment: z.string(),
    index: z.number().int().min(0),
    generation: z.number().int().min(0),
    epoch: z.number().int().min(0),
    step: z.number().int().min(1),
    tensors: z.record(z.string(), blobRefSchema),
    signer: z.string().optional(),
    signature: z.string().optional(),
  })
  .strict();

function parseVersionRecord(raw: Uint8Array): VersionRecord | string {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(raw));
  } catch {
    return 'not JSON';
  }
  const r = versionRecordSchema.safeParse(json);
  if (!r.success) return `not a version record (${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')})`;
  const { signer: _s, signature: _g, ...record } = r.data;
  return record;
}

function sha256Of(parts: Uint8Array[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('base64url');
}

function blobRefs(meta: StateMeta): BlobRef[] {
  return [...Object.values(meta.tensors), ...Object.values(meta.stash).flat(), ...(meta.outbox ?? []).flatMap((r) => (r.blob ? [r.blob] : []))];
}
function blobKeys(meta: StateMeta): string[] {
  return blobRefs(meta).map((r) => r.key);
}
