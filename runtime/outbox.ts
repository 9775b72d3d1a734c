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
import type { MessageKind } from './protocol.js';
import { covers, type ScheduleState } from './schedule.js';
import type { Tensor } from './tensor.js';

/** One output handed over in memory: what re-sending it needs. */
export interface OutboxEntry {
  /** Index of the receiving VNode. */
  readonly to: number;
  readonly kind: MessageKind;
  readonly seq: number;
  /** Absent only for `end`. */
  readonly tensor?: Tensor;
}

export class Outbox {
  readonly #entries = new Map<string, OutboxEntry>();

  constructor(entries: Iterable<OutboxEntry> = []) {
    for (const e of entries) this.add(e);
  }

  get size(): number {
    return this.#entries.size;
  }

  add(e: OutboxEntry): void {
    this.#entries.set(`${e.to}/${e.kind}/${e.seq}`, e);
  }

  /** Forget what VNode `to` holds in a committed checkpoint whose schedule is `covered`. */
  trim(to: number, covered: ScheduleState): void {
    if (this.#entries.size === 0) return; // the common case: every peer hears every commit
    for (const [k, e] of this.#entries) if (e.to === to && covers(covered, e.kind, e.seq)) this.#entries.delete(k);
  }

  /** Remove and return the entries for VNode `to` (all, without `to`), in seq order per kind. */
  take(to?: number): OutboxEntry[] {
    const out: OutboxEntry[] = [];
    for (const [k, e] of this.#entries) {
      if (to !== undefined && e.to !== to) continue;
      out.push(e);
      this.#entries.delete(k);
    }
    return out.sort((a, b) => a.to - b.to || a.seq - b.seq || a.kind.localeCompare(b.kind));
  }

  /** The receivers it holds entries for. */
  receivers(): number[] {
    return [...new Set([...this.#entries.values()].map((e) => e.to))];
  }

  /** The entries now, for a checkpoint (the outbox changes after it). */
  snapshot(): OutboxEntry[] {
    return [...this.#entries.values()];
  }
}
