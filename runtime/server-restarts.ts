/**
 * Did the nats-server restart under us? A single nats-server 2.9.10 that is SIGKILLed can
 * lose writes it acknowledged in its last tens of milliseconds, and 2.9 has no
 * `sync_interval`/`sync: always` — measured here: KV metas (a write that replaces a
 * subject's message) acknowledged 1–72 ms before the kill came back missing, while writes
 * to fresh subjects around them were kept (docs/nats-durability.md). Nothing a client can
 * read tells a crash from a clean restart, or which writes went, so a run that must lose
 * nothing treats every restart of an unreplicated store as a possible loss
 * (trainer/train.ts rolls the run back). A server's `server_id` is new with every start:
 * a reconnect to another id is a restart — or, on a cluster, another node, where the
 * replicated store (R3) keeps every acknowledged write and nothing needs doing.
 */
import type { NatsConnection, Status } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Bucket } from './protocol.js';
import { replicas } from './replicas.js';

export interface ServerRestart {
  /** The ids of the server before and after. */
  from: string;
  to: string;
  at: number;
}

/**
 * Whether a restart of the server behind `nc` can have lost acknowledged writes: not when
 * the state bucket is (or, not created yet, will be) replicated (a cluster), nor when the
 * operator says the server syncs every write (`DCNR_NATS_SYNC=always`: nats-server 2.10+
 * with `jetstream { sync_interval: always }`).
 */
export async function restartsMayLoseWrites(nc: NatsConnection): Promise<boolean> {
  if ((process.env.DCNR_NATS_SYNC ?? '').trim() === 'always') return false;
  const jsm = await jetstreamManager(nc);
  // Before the first run there is no bucket yet: the one this process would create.
  const info = await jsm.streams.info(`KV_${Bucket.State}`).catch(() => null);
  return (info?.config.num_replicas ?? replicas()) < 3;
}

/** Calls `onRestart` each time `nc` reconnects to a server with another id than before; `stop()` ends the watch. */
export function watchServerRestarts(nc: NatsConnection, onRestart: (r: ServerRestart) => void): { stop(): void } {
  let last = nc.info?.server_id;
  // The iterator nats.js gives has stop() (QueuedIterator); the declared type does not say so.
  const statuses = nc.status() as AsyncIterable<Status> & { stop?: () => void };
  void (async () => {
    try {
      for await (const s of statuses) {
        if (s.type !== 'reconnect') continue;
        const now = nc.info?.server_id;
        if (last && now && now !== last) onRestart({ from: last, to: now, at: Date.now() });
        last = now ?? last;
      }
    } catch {
      /* the connection closed: nothing more to watch */
    }
  })();
  return { stop: () => statuses.stop?.() };
}
