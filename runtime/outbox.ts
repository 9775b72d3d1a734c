/**
 * A VNode's outbox: the outputs it handed to a receiver in this process in memory only
 * (runtime/local-delivery.ts), kept until a committed checkpoint of that receiver covers
 * them. It is part of the sender's checkpoint.
 *
 * Why this is enough for exactly-once (invariant 2, docs/checkpoints.md "Local
 * edges"): a message between two VNodes of one process is never stored in JetStream.
 * If the process dies, each VNode restores its own last checkpoint; the receiver then
 * needs every message it had not covered in its own checkpoint. Those the sender sent
 * after ITS checkpoint, the sender's replay sends again (the same bytes: determinism);
 * those it sent before are in its checkpoint's outbox — nothing is trimmed from an
 * outbox before the receiver's covering checkpoint is committed, and a receiver never
 * restores an older checkpoint than one it committed. A restored sender re-sends its
 * outbox; the receiver drops what it covers. When a receiver leaves the process (moved,
 * failed, stopped, passivated) while its senders stay, they publish its entries to its
 * durable mailbox, and later outputs go there too.
 *
 * A sender's checkpoint never waits for a receiver's, so the two directions of an edge
 * (forward and backward) cannot wait on each other.
 */
import { PORT_OF_KIND, type MessageKind, type Port } from './protocol.js';
import { covers, type ScheduleState } from './schedule.js';
import type { Tensor } from './tensor.js';

/** One output handed over in memory: what re-sending it needs. */
export interface OutboxEntry {
  /** Index of the receiving VNode. */
  readonly to: number;
  readonly kind: MessageKind;
  /** The receiver's port (a graph VNode has several per kind). @default the kind's slot-0 port */
  readonly port?: Port;
  readonly seq: number;
  /** Absent only for `end`. */
  readonly tensor?: Tensor;
}

/** The port an entry goes to. */
export const portOf = (e: OutboxEntry): Port => e.port ?? PORT_OF_KIND[e.kind];
const coveredBy = (covered: ScheduleState, e: OutboxEntry) => covers(covered, e.kind, e.seq, portOf(e));

/** An entry, and the receiver's commit in flight that covers it (null: none captured yet). */
interface Held {
  readonly entry: OutboxEntry;
  covering: Promise<void> | null;
}

export class Outbox {
  readonly #entries = new Map<string, Held>();

  constructor(entries: Iterable<OutboxEntry> = []) {
    for (const e of entries) this.add(e);
  }

  /** Entries held, covered by a commit in flight or not. */
  get size(): number {
    return this.#entries.size;
  }

  add(e: OutboxEntry): void {
    this.#entries.set(`${e.to}/${portOf(e)}/${e.kind}/${e.seq}`, { entry: e, covering: null });
  }

  /** Forget what VNode `to` holds in a committed checkpoint whose schedule is `covered`. */
  trim(to: number, covered: ScheduleState): void {
    if (this.#entries.size === 0) return; // the common case: every peer hears every commit
    for (const [k, h] of this.#entries) if (h.entry.to === to && coveredBy(covered, h.entry)) this.#entries.delete(k);
  }

  /**
   * VNode `to` captured a checkpoint whose schedule is `covered`; `commit` settles when it
   * is committed (then those entries are forgotten) or has failed (then they are held as
   * before). Meanwhile our own checkpoints leave them out and wait for `commit`.
   */
  covering(to: number, covered: ScheduleState, commit: Promise<void>): void {
    if (this.#entries.size === 0) return;
    const keys: string[] = [];
    for (const [k, h] of this.#entries) {
      if (h.covering === null && h.entry.to === to && coveredBy(covered, h.entry)) {
        h.covering = commit;
        keys.push(k);
      }
    }
    if (keys.length === 0) return;
    const settle = (committed: boolean) => {
      for (const k of keys) {
        const h = this.#entries.get(k);
        if (h?.covering !== commit) continue;
        if (committed) this.#entries.delete(k);
        else h.covering = null;
      }
    };
    commit.then(
      () => settle(true),
      () => settle(false),
    );
  }

  /** Remove and return the entries for VNode `to` (all, without `to`), covered in flight or not, in seq order. */
  take(to?: number): OutboxEntry[] {
    const out: OutboxEntry[] = [];
    for (const [k, h] of this.#entries) {
      if (to !== undefined && h.entry.to !== to) continue;
      out.push(h.entry);
      this.#entries.delete(k);
    }
    return out.sort((a, b) => a.to - b.to || a.seq - b.seq || a.kind.localeCompare(b.kind) || portOf(a).localeCompare(portOf(b)));
  }

  /** The receivers it holds entries for. */
  receivers(): number[] {
    return [...new Set([...this.#entries.values()].map((h) => h.entry.to))];
  }

  /**
   * What a checkpoint of ours holds now: the entries no receiver's captured checkpoint
   * covers, and the receivers' commits in flight that cover the rest — our commit must
   * wait for them (each was captured before ours, so waiting cannot go round in a circle)
   * and fail if one fails.
   */
  snapshot(): { entries: OutboxEntry[]; after: Promise<void>[] } {
    const entries: OutboxEntry[] = [];
    const after = new Set<Promise<void>>();
    for (const h of this.#entries.values()) {
      if (h.covering) after.add(h.covering);
      else entries.push(h.entry);
    }
    return { entries, after: [...after] };
  }
}
