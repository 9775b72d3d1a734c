/**
 * Membership: who is in the cluster, from heartbeats alone. A PNode joins with its
 * first heartbeat (or its first after being declared dead) and is declared dead when
 * the failure detector says so. A heartbeat that does not parse is ignored (said once
 * per subject): anyone can publish on `dcnr.hb.*`.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { Subject, type Heartbeat } from '../runtime/protocol.js';
import { parseHeartbeat, type RejectRecord } from '../runtime/records.js';
import type { FailureDetector } from './detectors/types.js';

export interface Member {
  hb: Heartbeat;
  alive: boolean;
  lastHeartbeat: number;
}

export interface Membership {
  readonly members: Map<string, Member>;
  /** PNodes that joined (or came back) since the last call, in arrival order. */
  takeJoined(): string[];
  /** Declare dead every live member the detector gives up on; returns them. */
  sweep(now: number): Member[];
  /** The supervisor could not hear until `now` (it was away from NATS): the silence
   * before counts against no PNode; each live one is judged from `now` on. */
  excuse(now: number): void;
  stop(): void;
}

export interface MembershipOptions {
  nc: NatsConnection;
  detector: FailureDetector;
  reject: RejectRecord;
  onJoined(pnode: string, at: number): void;
  /** The same name came back with another pid: a fresh PNode. */
  onNewIncarnation(pnode: string): void;
  /** Every valid heartbeat, as it arrives (supervisor clock). */
  onHeartbeat?(hb: Heartbeat, at: number): void;
}

export function watchMembership(o: MembershipOptions): Membership {
  const members = new Map<string, Member>();
  let joined: string[] = [];
  const sub: Subscription = o.nc.subscribe(Subject.heartbeatAll, {
    callback: (_err, msg) => {
      const parsed = parseHeartbeat(msg.data);
      if (!parsed.ok) return o.reject('heartbeat', msg.subject, 0, parsed.error);
      const hb = parsed.value;
      // The name is the subject's: only that PNode's credentials may publish it (roles.ts),
      // while anyone may write any name into a payload.
      if (msg.subject !== Subject.heartbeat(hb.pnode)) return o.reject('heartbeat', msg.subject, 0, `it names ${hb.pnode}, not the PNode of its subject`);
      const now = Date.now();
      o.detector.heartbeat(hb.pnode, now);
      const m = members.get(hb.pnode);
      if (m && m.hb.pid !== hb.pid) o.onNewIncarnation(hb.pnode);
      if (!m || !m.alive) {
        joined.push(hb.pnode);
        o.onJoined(hb.pnode, now);
      }
      members.set(hb.pnode, { hb, alive: true, lastHeartbeat: now });
      o.onHeartbeat?.(hb, now);
    },
  });
  return {
    members,
    takeJoined() {
      const out = joined;
      joined = [];
      return out;
    },
    sweep(now) {
      const dead: Member[] = [];
      for (const [id, m] of members) {
        if (m.alive && o.detector.isDead(id, now)) {
          m.alive = false;
          dead.push(m);
        }
      }
      return dead;
    },
    excuse(now) {
      for (const [id, m] of members) if (m.alive) o.detector.heartbeat(id, now);
    },
    stop: () => sub.unsubscribe(),
  };
}
