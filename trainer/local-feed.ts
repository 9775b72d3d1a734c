/**
 * Feeds to VNodes of this process (`dcnr train --pnodes 0`) go in memory only, as a local
 * edge between two VNodes does (runtime/local-delivery.ts, docs/checkpoints.md "Local
 * edges"): a `fwd`, `target` or `end` whose receiver runs on this connection is handed
 * over and never stored in JetStream. Before, each was published and offered in memory:
 * at batch 64 that stored and read back 200 KB per step through nats-server, and one
 * process trained mnist-mlp at ~6,800 samples/s; in memory only, 11,000 (`dcnr train`)
 * to 13,000 (`dcnr bench`), with the same `paramsHash`.
 *
 * Where a VNode keeps an outbox in its checkpoints, the trainer keeps none: a feed is a
 * pure function of (seed, seq) (`trainingBatch`), so what a receiver has not covered
 * can be made again. Per receiver and kind, the seqs handed over and not yet covered by
 * a committed checkpoint of the receiver are [from, next):
 * - a receiver's committed checkpoint (`covering`, once its commit settles) raises `from`;
 * - a receiver that leaves the process (`gone`: it failed and restarts, or stopped) gets
 *   [from, next) made again and published to its durable mailbox, from where its next
 *   activation replays them — after that they are the mailbox's, no longer ours;
 * - a process that dies takes the trainer with it: `--resume` starts feeding at the
 *   lowest committed watermark of the receivers (`feedProgress`, trainer/completion.ts),
 *   not at the loss's alone.
 * Everything re-sent is byte-identical under the same message id: a receiver that holds
 * it already drops it by its watermark (invariant 2 as ever).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { handOver, sendMessage, type Envelope } from '../runtime/envelope.js';
import { watchLocalPeers } from '../runtime/local-delivery.js';
import type { MessageKind } from '../runtime/protocol.js';
import { covers } from '../runtime/schedule.js';
import type { Signer } from '../runtime/security/signing.js';
import { retrying } from './retry.js';

export interface LocalFeedOptions {
  nc: NatsConnection;
  deployment: string;
  /** The feed `kind` `seq` to VNode `to`, made again (the same bytes as the first time). */
  remake(to: number, kind: MessageKind, seq: number): Envelope;
  signer?: Signer;
  signal?: AbortSignal;
  log(line: string): void;
}

export interface LocalFeed {
  /** Hand `e` over in memory if its receiver runs here (true); false: publish it. */
  send(e: Envelope): boolean;
  /** Re-sends to receivers that left, still on their way. */
  settled(): Promise<void>;
  stop(): void;
}

interface Handed {
  to: number;
  kind: MessageKind;
  /** Lowest seq handed over that no committed checkpoint of the receiver covers yet. */
  from: number;
  /** One past the highest seq handed over. */
  next: number;
}

export function localFeed(o: LocalFeedOptions): LocalFeed {
  const handed = new Map<string, Handed>(); // `${to}/${kind}`
  const resends = new Set<Promise<void>>();
  let failure: unknown;

  const stopWatching = watchLocalPeers(o.nc, o.deployment, {
    covering(index, covered, commit) {
      commit.then(
        () => {
          for (const h of handed.values()) {
            if (h.to !== index) continue;
            while (h.from < h.next && covers(covered, h.kind, h.from)) h.from++;
          }
        },
        () => {}, // a failed commit covers nothing: what it held stays ours
      );
    },
    gone(index) {
      for (const h of handed.values()) {
        if (h.to !== index || h.from >= h.next) continue;
        const [from, next] = [h.from, h.next];
        h.from = next; // from here on in the receiver's mailbox
        o.log(`VNode ${index} left this process: publishing ${h.kind} ${from}…${next - 1} (handed over in memory, not covered) to its mailbox`);
        const p = (async () => {
          for (let seq = from; seq < next; seq++) await retrying(o.signal, () => sendMessage(o.nc, o.remake(index, h.kind, seq), o.signer));
        })().catch((err) => void (failure ??= err));
        resends.add(p);
        void p.finally(() => resends.delete(p));
      }
    },
  });

  return {
    send(e) {
      if (failure) throw failure;
      if (!handOver(o.nc, e)) return false;
      const k = `${e.to}/${e.kind}`;
      const h = handed.get(k);
      if (!h) handed.set(k, { to: e.to, kind: e.kind, from: e.seq, next: e.seq + 1 });
      else {
        if (h.from >= h.next) h.from = e.seq; // nothing uncovered: it starts here
        h.next = Math.max(h.next, e.seq + 1);
      }
      return true;
    },
    async settled() {
      while (resends.size > 0) await Promise.all(resends);
      if (failure) throw failure;
    },
    stop: stopWatching,
  };
}
