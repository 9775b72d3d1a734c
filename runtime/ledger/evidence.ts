/**
 * Evidence: the tensors the ledger names — every applied message's input and the anchor
 * states a re-execution starts from — kept content-addressed in the deployment's
 * evidence stream (`Subject.evidence`: one subject per sha256 and chunk, one message per
 * subject), so a tensor stored twice is kept once. A work-queue mailbox deletes an input
 * on ack; this is where it stays for the verifier (docs/ledger.md: retention and cost).
 */
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import { Stream, Subject } from '../protocol.js';
import { fromBytes, toBytes } from '../tensor.js';
import type { EvidenceRef } from './entry.js';

/** Evidence tensors this process has stored (so each is sent once), at most this many remembered. */
const REMEMBERED = 50_000;
/** Evidence publishes in flight per process (the JetStream publish timeout must not see a long queue). */
const IN_FLIGHT = 32;

export class Evidence {
  readonly #stored = new Set<string>();
  readonly #io = pLimit(IN_FLIGHT);
  /** Bytes this process has stored as evidence (the ledger's cost, for `dcnr bench`). */
  bytesWritten = 0;

  constructor(
    readonly deployment: string,
    readonly generation: number,
    readonly chunkBytes: number,
    private readonly js: JetStreamClient,
  ) {}

  /** Store `data` under its hash, unless this process already did; resolves once the server has it. */
  async put(ref: EvidenceRef, data: Float32Array): Promise<void> {
    if (this.#stored.has(ref.sha)) return;
    const bytes = toBytes(data);
    const chunks = Math.max(1, Math.ceil(bytes.byteLength / this.chunkBytes));
    await Promise.all(Array.from({ length: chunks }, (_, k) => this.#io(() => this.js.publish(Subject.evidence(this.deployment, ref.sha, k), bytes.subarray(k * this.chunkBytes, (k + 1) * this.chunkBytes)))));
    this.bytesWritten += bytes.byteLength;
    if (this.#stored.size >= REMEMBERED) this.#stored.clear();
    this.#stored.add(ref.sha);
  }
}

const perConnection = new WeakMap<NatsConnection, Map<string, Evidence>>();

/**
 * The evidence store of `deployment`'s `generation` for this connection: one per process,
 * so its VNodes store a tensor they share once. Per generation: a fresh run deletes the
 * stream, and what the last run stored (the same bytes, often: same seed) is gone with it.
 */
export function evidenceOf(nc: NatsConnection, js: JetStreamClient, deployment: string, generation: number, chunkBytes: number): Evidence {
  let m = perConnection.get(nc);
  if (!m) perConnection.set(nc, (m = new Map()));
  let e = m.get(deployment);
  if (!e || e.generation !== generation) m.set(deployment, (e = new Evidence(deployment, generation, chunkBytes, js)));
  return e;
}

/**
 * Read an evidence tensor back: its chunks (as many as the writer's chunk size made),
 * checked against its hash. Null when it is missing (never stored, or dropped by the
 * stream's limits); a string when it is there but altered.
 */
export async function readEvidence(jsm: JetStreamManager, deployment: string, ref: EvidenceRef): Promise<Float32Array | null | string> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (let k = 0; total < ref.length * 4; k++) {
    const m = await jsm.streams.getMessage(Stream.evidence(deployment), { last_by_subj: Subject.evidence(deployment, ref.sha, k) }).catch(() => null);
    if (!m) return k === 0 ? null : `evidence ${ref.sha} lacks chunk ${k}`;
    if (m.data.byteLength === 0) return `evidence ${ref.sha} has an empty chunk ${k}`;
    parts.push(m.data);
    total += m.data.byteLength;
  }
  if (total !== ref.length * 4) return `evidence ${ref.sha} holds ${total} bytes, its record says ${ref.length * 4}`;
  const joined = parts.length === 1 ? parts[0] : Buffer.concat(parts);
  const h = createHash('sha256').update(joined).digest('base64url');
  if (h !== ref.sha) return `evidence ${ref.sha} was altered: its bytes hash to ${h}`;
  return fromBytes(new Uint8Array(joined));
}
