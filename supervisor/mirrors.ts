/**
 * Mirrors of KV buckets the supervisor reads on every tick: ownership records and
 * deployments, kept current by a watch (KV is the source of truth; the mirror is a
 * cache). Listing a bucket per tick would create a JetStream consumer ten times a
 * second — a load that, on a 3-node cluster after a leader change, was seen to stall
 * JetStream. A value that is not a valid record is said once and changes nothing: the
 * mirror keeps the last good record of that key (junk written over an ownership record
 * must not make its VNode look unowned and be moved).
 */
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { QueuedIterator } from '@nats-io/transport-node';
import { parseEntry, type Parsed, type RejectRecord } from '../runtime/records.js';

/** A live mirror of one bucket's records. */
export interface Mirror<T> {
  readonly records: Map<string, T>;
  stop(): void;
}

/**
 * Mirror `kv` (keys passing `keep`) into a map of parsed records. Resolves once the
 * initial values are in, or after `settleMs` for an empty bucket (which delivers nothing).
 */
export async function mirrorBucket<T>(
  kv: KV,
  parse: (d: Uint8Array) => Parsed<T>,
  reject: RejectRecord,
  o: { keep?: (key: string) => boolean; settleMs?: number; refuse?: (prev: T | undefined, next: T) => string | null } = {},
): Promise<Mirror<T>> {
  const records = new Map<string, T>();
  const watch: QueuedIterator<KvWatchEntry> = await kv.watch();
  let ready!: () => void;
  const loaded = new Promise<void>((r) => (ready = r));
  void (async () => {
    for await (const e of watch) {
      if (o.keep && !o.keep(e.key)) continue;
      if (e.operation !== 'PUT' || e.length === 0) records.delete(e.key);
      else {
        const value = parseEntry(e, parse, reject);
        const refused = value !== null && o.refuse?.(records.get(e.key), value);
        if (refused) reject(e.bucket, e.key, e.revision, refused);
        else if (value !== null) records.set(e.key, value);
      }
      if (e.delta === 0) ready();
    }
  })();
  await Promise.race([loaded, new Promise((r) => setTimeout(r, o.settleMs ?? 500))]);
  return { records, stop: () => watch.stop() };
}
