/**
 * The supervisor: membership, failure detection, placement and migration.
 *
 * It is never on the data path: it only reads heartbeats and events, and writes
 * ownership records (epoch bumps) and its own view to KV. Its state lives in KV
 * (ownership records, the draining list), so a restarted supervisor resumes where
 * the last one stopped; after a restart it waits one detection period, listening to
 * heartbeats, before it declares anything dead.
 *
 * Migration (Orleans' dehydrate/rehydrate pair, through KV): bump the VNode's epoch
 * naming a new PNode → the new PNode restores the state from KV and commits a
 * takeover write (which fences the old owner) → it re-creates the mailbox consumers
 * and replays from the oldest unacked message; seq watermarks drop what was applied.
 */
import { telemetryMetrics } from '../runtime/telemetry.js';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { assignOwner, openBuckets, subscribeClusterEvents, type Buckets, type DeploymentRecord, type OwnershipRecord } from '../runtime/cluster-state.js';
import {
  Subject,
  SupervisorKey,
  type ClusterEvent,
  type DrainReply,
  type DrainRequest,
  type Heartbeat,
  type MemberView,
  type SupervisorView,
} from '../runtime/protocol.js';
import { createTimeoutDetector } from './detectors/timeout.js';
import type { FailureDetector } from './detectors/types.js';
import { createLeastLoadedPlacement } from './placement/least-loaded.js';
import type { PlacementStrategy } from './placement/types.js';

export interface SupervisorOptions {
  nc: NatsConnection;
  /** @default timeout detector, 1000 ms */
  detector?: FailureDetector;
  /** Silence before a PNode is declared dead; also the grace period after start. @default 1000 */
  detectMs?: number;
  /** @default least-loaded */
  placement?: PlacementStrategy;
  /** Reconcile period. @default 100 */
  tickMs?: number;
  /** VNodes moved at most to a newly joined PNode (bounded rebalance). @default 2 */
  rebalanceMoves?: number;
  log?: (line: string) => void;
}

export interface Supervisor {
  /** The current membership view. */
  view(): SupervisorView;
  stop(): Promise<void>;
}

interface Member {
  hb: Heartbeat;
  alive: boolean;
  lastHeartbeat: number;
}

interface PendingRecovery {
  pnode: string;
  declaredAt: number;
  lastHeartbeat: number;
  waiting: Set<string>;
  vnodes: string[];
  lastActivation: number;
}

export async function startSupervisor(o: SupervisorOptions): Promise<Supervisor> {
  const { nc } = o;
  const log = o.log ?? (() => {});
  const detectMs = o.detectMs ?? 1000;
  const detector = o.detector ?? createTimeoutDetector({ timeoutMs: detectMs });
  const placement = o.placement ?? createLeastLoadedPlacement();
  const rebalanceMoves = o.rebalanceMoves ?? 2;
  const buckets: Buckets = await openBuckets(nc);
  const startedAt = Date.now();
  const members = new Map<string, Member>();
  const owners = new Map<string, OwnershipRecord>();
  const joined: string[] = [];
  const recoveries: PendingRecovery[] = [];
  const drainWaiters: Array<{ pnode: string; moved: Set<string>; activated: Set<string>; reply: (r: DrainReply) => void; deadline: number }> = [];
  const escalated = new Map<string, string>(); // vnode → pnode that gave up on it
  const draining = new Set<string>(await readJson<string[]>(buckets, SupervisorKey.draining, []));
  let stopped = false;

  const emit = (e: ClusterEvent) => {
    nc.publish(Subject.events('supervisor'), JSON.stringify(e));
    log(JSON.stringify(e));
  };

  // Ownership records, mirrored from KV (the source of truth) by a watch.
  const ownerWatch = await buckets.owners.watch();
  let ownersReady!: () => void;
  const ownersLoaded = new Promise<void>((r) => (ownersReady = r));
  void (async () => {
    for await (const e of ownerWatch) {
      let record: OwnershipRecord | undefined;
      try {
        record = e.operation === 'PUT' && e.length > 0 ? e.json<OwnershipRecord>() : undefined;
      } catch {
        record = undefined; // not an ownership record: as good as none
      }
      if (record && typeof record.pnode === 'string' && Number.isSafeInteger(record.epoch)) owners.set(e.key, record);
      else owners.delete(e.key);
      if (e.delta === 0) ownersReady();
    }
  })();
  // An empty bucket delivers nothing: don't wait forever for the initial values.
  await Promise.race([ownersLoaded, new Promise((r) => setTimeout(r, 500))]);

  // Deployments, mirrored by a watch too. (Listing the bucket on every tick created a
  // JetStream consumer ten times a second: a load that, on a 3-node cluster after a
  // leader change, was seen to stall JetStream.) A record that is not a deployment is ignored.
  const deployments = new Map<string, Pick<DeploymentRecord, 'spec' | 'hostedBy'>>();
  const deploymentWatch = await buckets.deployments.watch();
  void (async () => {
    for await (const e of deploymentWatch) {
      if (e.key.includes('.')) continue;
      let record: DeploymentRecord | undefined;
      if (e.operation === 'PUT' && e.length > 0) {
        try {
          record = e.json<DeploymentRecord>();
        } catch {
          record = undefined;
        }
      }
      if (record && Array.isArray(record.spec?.vnodes)) deployments.set(e.key, record);
      else deployments.delete(e.key);
    }
  })();

  const subs: Subscription[] = [];
  subs.push(
    nc.subscribe(Subject.heartbeatAll, {
      callback: (_err, msg) => {
        let hb: Heartbeat;
        try {
          hb = msg.json<Heartbeat>();
          if (typeof hb.pnode !== 'string' || typeof hb.at !== 'number') return;
        } catch {
          return; // not a heartbeat
        }
        const now = Date.now();
        detector.heartbeat(hb.pnode, now);
        const m = members.get(hb.pnode);
        if (m && m.hb.pid !== hb.pid && draining.delete(hb.pnode)) {
          // A new incarnation under the same name is a fresh PNode: no longer draining.
          void buckets.members.put(SupervisorKey.draining, JSON.stringify([...draining]));
        }
        if (!m || !m.alive) {
          joined.push(hb.pnode);
          emit({ type: 'joined', pnode: hb.pnode, at: now });
        }
        members.set(hb.pnode, { hb, alive: true, lastHeartbeat: now });
      },
    }),
  );
  subs.push(
    subscribeClusterEvents(nc, (e) => {
      if (e.type === 'activated') {
        for (const r of recoveries) {
          if (r.waiting.delete(e.vnode)) r.lastActivation = Math.max(r.lastActivation, Date.now());
        }
        for (const w of drainWaiters) if (w.moved.has(e.vnode)) w.activated.add(e.vnode);
      }
      if (e.type === 'escalated') escalated.set(e.vnode, e.pnode);
    }),
  );
  subs.push(
    nc.subscribe(Subject.control('drain'), {
      callback: (_err, msg) => {
        let req: DrainRequest;
        try {
          req = msg.json<DrainRequest>();
        } catch {
          msg.respond(JSON.stringify({ ok: false, pnode: '', moved: [], error: 'drain request must be JSON {"pnode": "<id>"}' } satisfies DrainReply));
          return;
        }
        if (!members.has(req.pnode)) {
          msg.respond(JSON.stringify({ ok: false, pnode: req.pnode, moved: [], error: `unknown PNode ${JSON.stringify(req.pnode)} (known: ${[...members.keys()].join(', ') || 'none'})` } satisfies DrainReply));
          return;
        }
        draining.add(req.pnode);
        void buckets.members.put(SupervisorKey.draining, JSON.stringify([...draining]));
        const moved = new Set([...owners].filter(([, r]) => r.pnode === req.pnode).map(([k]) => k));
        log(`draining ${req.pnode}: ${moved.size} VNodes to move`);
        drainWaiters.push({ pnode: req.pnode, moved, activated: new Set(), reply: (r) => msg.respond(JSON.stringify(r)), deadline: Date.now() + 60_000 });
      },
    }),
  );

  async function deploymentVNodes(): Promise<string[]> {
    const out: string[] = [];
    for (const dep of [...deployments.keys()].sort()) {
      const record = deployments.get(dep)!;
      // A deployment hosted inside one trainer process is not ours to place.
      if (!record.hostedBy) for (let i = 0; i < record.spec.vnodes.length; i++) out.push(`${dep}.${i}`);
    }
    return out;
  }

  async function assign(vnode: string, pnode: string, reason: string): Promise<void> {
    const [dep, index] = vnode.split('.');
    const from = owners.get(vnode)?.pnode ?? null;
    const record = await assignOwner(buckets.owners, dep, Number(index), pnode);
    owners.set(vnode, record);
    emit({ type: 'assigned', vnode, pnode, epoch: record.epoch, from, reason, at: Date.now() });
    if (from !== null) telemetryMetrics().migrations.add(1, { 'dcnr.reason': reason });
  }

  async function tick(): Promise<void> {
    const now = Date.now();
    const inGrace = now - startedAt < detectMs;
    let died = false;
    for (const [id, m] of members) {
      if (m.alive && !inGrace && detector.isDead(id, now)) {
        m.alive = false;
        emit({ type: 'dead', pnode: id, at: now, lastHeartbeat: m.lastHeartbeat });
        const vnodes = [...owners].filter(([, r]) => r.pnode === id).map(([k]) => k);
        if (vnodes.length) recoveries.push({ pnode: id, declaredAt: now, lastHeartbeat: m.lastHeartbeat, waiting: new Set(vnodes), vnodes, lastActivation: now });
        died = true;
      }
    }
    // A death reaches readers of the view (dcnr status, the dashboard) at once, not
    // after the placement below and the next periodic write.
    if (died) await publishView();
    if (inGrace) return;

    const candidates: MemberView[] = [...members.values()].filter((m) => m.alive && !draining.has(m.hb.pnode)).map((m) => memberView(m, draining));
    const candidateIds = new Set(candidates.map((c) => c.id));
    const wanted = await deploymentVNodes();
    const wantedSet = new Set(wanted);
    const current = new Map([...owners].filter(([k]) => wantedSet.has(k)).map(([k, r]) => [k, r.pnode]));

    // VNodes with no live, non-draining owner; and those whose owner gave up on them.
    const toPlace = wanted.filter((v) => !candidateIds.has(current.get(v) ?? '') || escalated.get(v) === current.get(v));
    if (toPlace.length && candidates.length) {
      // Placement sees every candidate, newcomers included: no rebalance on top of it.
      joined.length = 0;
      const given = escalated;
      const pool = (v: string) => candidates.filter((c) => given.get(v) !== c.id || candidates.length === 1);
      const choice = placement.place({ toPlace, candidates, current });
      for (const v of toPlace) {
        let p = choice.get(v);
        if (p && given.get(v) === p) p = pool(v)[0]?.id; // not back to the PNode that escalated it
        if (!p) continue;
        const reason = escalated.has(v) ? 'escalated' : current.has(v) ? (draining.has(current.get(v)!) ? 'drain' : 'owner dead') : 'new';
        escalated.delete(v);
        await assign(v, p, reason);
        current.set(v, p);
      }
    }

    // Bounded rebalance toward newly joined PNodes.
    while (joined.length) {
      const newcomer = joined.shift()!;
      if (!candidateIds.has(newcomer)) continue;
      for (let moves = 0; moves < rebalanceMoves; moves++) {
        const counts = new Map(candidates.map((c) => [c.id, 0]));
        for (const p of current.values()) if (counts.has(p)) counts.set(p, counts.get(p)! + 1);
        const [busiest, most] = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0];
        if (most - (counts.get(newcomer) ?? 0) <= 1) break;
        const victim = [...current].filter(([, p]) => p === busiest).map(([v]) => v).sort().pop()!;
        await assign(victim, newcomer, 'rebalance');
        current.set(victim, newcomer);
      }
    }

    for (let i = recoveries.length - 1; i >= 0; i--) {
      const r = recoveries[i];
      if (r.waiting.size === 0) {
        recoveries.splice(i, 1);
        emit({ type: 'recovered', pnode: r.pnode, vnodes: r.vnodes, detectMs: r.declaredAt - r.lastHeartbeat, resumeMs: r.lastActivation - r.declaredAt, at: Date.now() });
        telemetryMetrics().detectMs.record(r.declaredAt - r.lastHeartbeat);
        telemetryMetrics().resumeMs.record(r.lastActivation - r.declaredAt);
      }
    }
    for (let i = drainWaiters.length - 1; i >= 0; i--) {
      const w = drainWaiters[i];
      const done = [...w.moved].every((v) => w.activated.has(v) || !wantedSet.has(v));
      if (done || now > w.deadline) {
        drainWaiters.splice(i, 1);
        w.reply({ ok: done, pnode: w.pnode, moved: [...w.moved], error: done ? undefined : 'timed out waiting for the moved VNodes to activate' });
      }
    }
  }

  // The view is written when it changes, and at least once a second: readers judge a
  // supervisor alive by the view's freshness.
  let lastView = '';
  let lastWrite = 0;
  async function publishView() {
    const text = JSON.stringify({ ...view(), at: 0 });
    if (text === lastView && Date.now() - lastWrite < 1000) return;
    lastView = text;
    lastWrite = Date.now();
    await buckets.members.put(SupervisorKey.view, JSON.stringify(view()));
  }

  function view(): SupervisorView {
    return {
      at: Date.now(),
      supervisorPid: process.pid,
      pnodes: [...members.values()].map((m) => memberView(m, draining)).sort((a, b) => a.id.localeCompare(b.id)),
    };
  }

  let ticks = 0;
  const loop = (async () => {
    while (!stopped) {
      try {
        await tick();
        if (ticks++ % 3 === 0) await publishView();
      } catch (err) {
        if (!stopped) log(`reconcile failed: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, o.tickMs ?? 100));
    }
  })();
  log(`supervisor (pid ${process.pid}) up: detector timeout ${detectMs} ms, placement ${placement.name}`);

  return {
    view,
    async stop() {
      stopped = true;
      for (const s of subs) s.unsubscribe();
      ownerWatch.stop();
      deploymentWatch.stop();
      await loop;
    },
  };
}

function memberView(m: Member, draining: Set<string>): MemberView {
  return {
    id: m.hb.pnode,
    pid: m.hb.pid,
    alive: m.alive,
    draining: draining.has(m.hb.pnode),
    capacity: m.hb.capacity,
    vnodes: m.hb.vnodes,
    lastHeartbeat: m.lastHeartbeat,
    counters: m.hb.counters,
  };
}

async function readJson<T>(buckets: Buckets, key: string, fallback: T): Promise<T> {
  const e = await buckets.members.get(key);
  if (!e || e.operation !== 'PUT' || e.length === 0) return fallback;
  try {
    return e.json<T>();
  } catch {
    return fallback;
  }
}
