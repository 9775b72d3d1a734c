/**
 * A VNode's side of the ledger (docs/ledger.md): it records a digest of every message it
 * applies, keeps an anchor (its whole state) every ANCHOR_EVERY messages, and at each
 * checkpoint seals what it recorded since the last into one entry, chained to the
 * previous. The checkpoint stores the entry's evidence and then the entry before its
 * meta CAS, and the meta names the entry (`StateMeta.ledger`): a committed state always
 * has its entries stored; an entry whose checkpoint failed its CAS is an orphan, on no
 * committed chain. A replay after a crash records the same messages with the same
 * digests (determinism), chained from the head the restored checkpoint names.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import { Subject } from '../protocol.js';
import type { Signer } from '../security/signing.js';
import type { LedgerHead } from '../state-store.js';
import type { StepInput, StepResult, StepState } from '../vnode-step.js';
import { evidenceRef, outputsDigest, paramsDigest, sealEntry, type Anchor, type EvidenceRef, type LedgerEntry, type LedgerMessage } from './entry.js';
import type { Evidence } from './evidence.js';

/** A VNode keeps its whole state as an anchor before every this-many messages: re-execution starts from one, so this is its granularity. */
export const ANCHOR_EVERY = 64;

/** Share of segments the supervisor has other PNodes re-execute while training, unless told otherwise (supervisor/audit.ts). */
export const DEFAULT_AUDIT_SHARE = 0.05;

/** Who records: the fields every entry of this VNode's owner carries, and where it stores them. */
export interface RecorderOptions extends Pick<LedgerEntry, 'deployment' | 'generation' | 'vnode' | 'type' | 'epoch' | 'pnode' | 'kernels'> {
  /** The parameters whose digest follows each update (the type's `parameters`; all tensors if it names none). */
  parameters: readonly string[] | undefined;
  evidence: Evidence;
  js: JetStreamClient;
  signer: Signer | undefined;
}

/** An entry sealed at a checkpoint, to store before its meta. */
export interface SealedEntry {
  bytes: Uint8Array;
  evidence: Array<{ ref: EvidenceRef; data: Float32Array }>;
  messages: number;
}

export class LedgerRecorder {
  #head: LedgerHead;
  #from: number;
  #messages: LedgerMessage[] = [];
  #anchors: Array<{ at: number; state: StepState }> = [];
  #evidence: Array<{ ref: EvidenceRef; data: Float32Array }> = [];

  constructor(
    private readonly o: RecorderOptions,
    restored: LedgerHead | undefined,
  ) {
    this.#head = restored ?? { count: 0, head: null };
    this.#from = this.#head.count;
  }

  /** What a checkpoint taken now covers (its meta names it). */
  get head(): LedgerHead {
    return this.#head;
  }

  /** Message `m` was applied to `before`, giving `r`, in `computeMs`. */
  record(m: StepInput, before: StepState, r: StepResult, computeMs: number): void {
    const at = this.#head.count;
    if (at % ANCHOR_EVERY === 0) this.#anchors.push({ at, state: before });
    let input: LedgerMessage['input'] = null;
    if (m.tensor) {
      const ref = evidenceRef(m.tensor.data);
      this.#evidence.push({ ref, data: m.tensor.data });
      input = { shape: m.tensor.shape, ref };
    }
    this.#messages.push({
      kind: m.kind,
      port: m.port,
      seq: m.seq,
      input,
      outputs: outputsDigest(r.outputs, r.loss?.value),
      ...(r.update !== undefined ? { step: r.update, params: paramsDigest(r.tensors, this.o.parameters) } : {}),
      // A federated sync changes the parameters without being an update (runtime/federated/rounds.ts): its digest is recorded too.
      ...(m.kind === 'sync' ? { params: paramsDigest(r.tensors, this.o.parameters) } : {}),
      computeMs: Math.round(computeMs * 1000) / 1000,
    });
    // The head moves at the seal; the count now (anchors are numbered by it).
    this.#head = { count: at + 1, head: this.#head.head };
  }

  /** Seal what was recorded since the last seal into an entry (null if nothing was); the head moves to it. */
  seal(): SealedEntry | null {
    if (this.#messages.length === 0) return null;
    const evidence = this.#evidence;
    const anchors: Anchor[] = this.#anchors.map(({ at, state }) => {
      const keep = (data: Float32Array) => {
        const ref = evidenceRef(data);
        evidence.push({ ref, data });
        return ref;
      };
      return {
        at,
        applied: state.applied,
        tensors: Object.keys(state.tensors)
          .sort()
          .map((name) => [name, keep(state.tensors[name])] as [string, EvidenceRef]),
        stash: [...state.stash.keys()].sort((a, b) => a - b).map((seq) => [seq, state.stash.get(seq)!.map(keep)] as [number, EvidenceRef[]]),
      };
    });
    const o = this.o;
    const entry: LedgerEntry = {
      format: 1,
      deployment: o.deployment,
      generation: o.generation,
      vnode: o.vnode,
      type: o.type,
      epoch: o.epoch,
      pnode: o.pnode,
      kernels: o.kernels,
      from: this.#from,
      messages: this.#messages,
      anchors,
      prev: this.#head.head,
    };
    const { record, bytes } = sealEntry(entry, o.signer);
    this.#head = { count: this.#head.count, head: record.hash };
    this.#from = this.#head.count;
    this.#messages = [];
    this.#anchors = [];
    this.#evidence = [];
    return { bytes, evidence, messages: entry.messages.length };
  }

  /** Store a sealed entry: its evidence, then the entry (a checkpoint does this before its meta CAS). */
  async store(sealed: SealedEntry): Promise<void> {
    const unique = new Map(sealed.evidence.map((e) => [e.ref.sha, e]));
    await Promise.all([...unique.values()].map((e) => this.o.evidence.put(e.ref, e.data)));
    await this.o.js.publish(Subject.ledger(this.o.deployment, this.o.vnode), sealed.bytes);
  }
}
