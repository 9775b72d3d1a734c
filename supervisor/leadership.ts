/**
 * Leadership among supervisors: any number may run, one leads. The leader holds a
 * lease, a record in KV (`SupervisorKey.lease` in the members bucket) that it renews by
 * compare-and-set every `leaseMs / 4`; the others are standbys that follow the cluster
 * (heartbeats, ownership, deployments) without acting on it. A standby takes the lease
 * when its revision has not moved for `leaseMs` as timed by the standby's own clock,
 * with a compare-and-set on that revision and the next term: of several standbys one
 * wins, and a leader that was only slow finds its next renewal refused and steps down.
 *
 * A supervisor restarted under its name (`--name`, unique per supervisor) takes a lease
 * held under that name at once: it is its own previous incarnation's (a restarted lone
 * supervisor serves again at once, not after a lease of silence).
 *
 * No clock is compared with another machine's: the leader counts its lease from the
 * moment it SENT its last successful renewal, and acts only while that is less than
 * `leaseMs · 3/4` ago (`valid()`); a standby counts from the moment it SAW that renewal,
 * which is later, and waits the whole `leaseMs`. A leader stalled past its lease (GC,
 * SIGSTOP, a lost network) therefore stops acting before anyone else starts.
 *
 * The term fences what the leader writes: every ownership record carries the term of
 * the leader that wrote it, and readers refuse a record whose term is lower than the
 * one it replaces (runtime/cluster-state.ts `termRegression`): a deposed leader that wakes
 * in the middle of a write cannot undo its successor's placement.
 */
import type { KV } from '@nats-io/kv';
import { SupervisorKey, type LeaseRecord } from '../runtime/protocol.js';
import { parseLeaseRecord } from '../runtime/records.js';
import { isCasConflict } from '../runtime/cluster-state.js';

export interface Leadership {
  /** Leader now, with a lease still valid: the only state in which a supervisor acts. */
  valid(): boolean;
  /** The term of the lease this supervisor holds or last saw. */
  readonly term: number;
  /** Who holds the lease as last seen (null: nobody yet). */
  readonly holder: string | null;
  /** Renew, or try to take over; call often (every tick). Resolves to the new role. */
  check(): Promise<'leader' | 'standby'>;
  /** Give the lease up (a graceful stop): a standby takes over at once, not after `leaseMs`. */
  resign(): Promise<void>;
}


export function createLeadership(o: { kv: KV; name: string; leaseMs?: number; log?: (line: string) => void; now?: () => number }): Leadership {
  const leaseMs = o.leaseMs ?? 1500;
  const now = o.now ?? (() => performance.now());
  const log = o.log ?? (() => {});
  let leader = false;
  let term = 0;
  let holder: string | null = null;
  /** Revision of the lease as last written or seen, and when it was first seen. */
  let revision = 0;
  let seenAt = now();
  /** When the last successful renewal (or takeover) was sent. */
  let renewedAt = -Infinity;
  /** No lease seen yet: a lease held under our own name is our previous incarnation's. */
  let first = true;

  const record = (t: number) => JSON.stringify({ holder: o.name, pid: process.pid, term: t, renewedAt: Date.now() } satisfies LeaseRecord);

  async function take(nextTerm: number, prev: number | null): Promise<boolean> {
    first = false;
    const sent = now();
    try {
      revision = prev === null ? await o.kv.create(SupervisorKey.lease, record(nextTerm)) : await o.kv.update(SupervisorKey.lease, record(nextTerm), prev);
    } catch (err) {
      if (isCasConflict(err)) return false;
      throw err;
    }
    const was = holder;
    leader = true;
    term = nextTerm;
    holder = o.name;
    renewedAt = sent;
    seenAt = sent;
    log(`leader now (term ${term}${was && was !== o.name ? `, after ${was}` : ''})`);
    return true;
  }

  async function renew(): Promise<void> {
    const sent = now();
    try {
      revision = await o.kv.update(SupervisorKey.lease, record(term), revision);
      renewedAt = sent;
    } catch (err) {
      if (!isCasConflict(err)) throw err; // NATS away: still leader until valid() runs out
      leader = false;
      log(`deposed: the lease of term ${term} was taken by another supervisor`);
      await observe(); // who holds it now, from when
    }
  }

  async function observe(): Promise<void> {
    const e = await o.kv.get(SupervisorKey.lease);
    if (!e || e.operation !== 'PUT' || e.length === 0) {
      // Nobody leads yet (or the last leader resigned): take it now.
      await take(term + 1, e ? e.revision : null);
      return;
    }
    const parsed = parseLeaseRecord(e.value);
    const wasFirst = first;
    first = false;
    if (wasFirst && parsed.ok && parsed.value.holder === o.name) {
      // Restarted (names are unique per supervisor): the lease is ours from before.
      term = parsed.value.term;
      await take(term + 1, e.revision);
      return;
    }
    if (e.revision !== revision) {
      revision = e.revision;
      seenAt = now();
      // A lease record that is not one (anyone with the supervisor's credentials could
      // write it) is taken over like a silent one: it moves no revision after this.
      if (parsed.ok) {
        term = Math.max(term, parsed.value.term);
        holder = parsed.value.holder;
      }
      return;
    }
    if (now() - seenAt > leaseMs) await take(term + 1, revision);
  }

  return {
    valid: () => leader && now() - renewedAt < (leaseMs * 3) / 4,
    get term() {
      return term;
    },
    get holder() {
      return holder;
    },
    async check() {
      if (leader) {
        if (now() - renewedAt >= leaseMs / 4) await renew();
      } else {
        await observe();
      }
      return leader ? 'leader' : 'standby';
    },
    async resign() {
      if (!leader) return;
      leader = false;
      await o.kv.delete(SupervisorKey.lease, { previousSeq: revision }).catch(() => {});
    },
  };
}
