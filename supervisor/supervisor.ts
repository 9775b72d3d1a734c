/**
 * The supervisor: membership, failure detection, placement and migration — one file
 * per concern beside this one, wired here:
 *   membership.ts  heartbeats → members; the failure detector (detectors/) says who is dead
 *   mirrors.ts     ownership records and deployments, mirrored from KV by watches
 *   reconcile.ts   the moves (placement strategies in placement/, bounded rebalance)
 *   recovery.ts    a dead PNode's VNodes until they all run again → `recovered`
 *   drain.ts       `dcnr drain` requests, the draining list, their replies
 *   health.ts      heartbeats' health signals → a risk score per PNode → proactive drains
 *   audit.ts       spot re-execution of ledger segments by other PNodes → reputation, quarantine
 *   view.ts        the membership view in KV (what `dcnr status` reads)
 *   leadership.ts  the lease: of any number of supervisors one leads, the others stand by
 *
 * It is never on the data path: it reads heartbeats and events, and writes ownership
 * records (epoch bumps) and its own state to KV. That state lives in KV (ownership
 * records, the draining list), so a restarted supervisor resumes where the last one
 * stopped; after a start it waits one detection period, listening to heartbeats,
 * before it declares anything dead. A standby follows everything a leader does (the
 * heartbeats, the mirrors) and acts on none of it until it holds the lease: it takes
 * over warm, without that wait.
 *
 * Migration (Orleans' dehydrate/rehydrate pair, through KV): bump the VNode's epoch
 * naming a new PNode → the new PNode restores the state from KV and commits a
 * takeover write (which fences the old owner) → it re-creates the mailbox consumers
 * and replays from the oldest unacked message; seq watermarks drop what was applied.
 */
import { hostname } from 'node:os';
import type { NatsConnection } from '@nats-io/transport-node';
import { signerOf } from '../runtime/security/signing.js';
import { assignOwner, openBuckets, readDeployment, subscribeClusterEvents, termRegression, type DeploymentRecord, type OwnershipRecord } from '../runtime/cluster-state.js';
import { silentLog, type ComponentLog } from '../runtime/log.js';
import { Subject, type ClusterEvent, type SupervisorView } from '../runtime/protocol.js';
import { parseDeploymentRecord, parseOwnershipRecord, rejectOnce } from '../runtime/records.js';
import { telemetryMetrics } from '../runtime/telemetry.js';
import { createTimeoutDetector } from './detectors/timeout.js';
import type { FailureDetector } from './detectors/types.js';
import { DEFAULT_AUDIT_SHARE, startAudits, type Audits } from './audit.js';
import { handleDrains, type Drains } from './drain.js';
import { drainCandidate, reclaimCandidate, trackRisk } from './health.js';
import { createLeadership } from './leadership.js';
import { watchMembership, type Membership } from './membership.js';
import { mirrorBucket } from './mirrors.js';
import { createLeastLoadedPlacement } from './placement/least-loaded.js';
import { deployedVNodes } from '../runtime/federated/federation.js';
import type { PlacementStrategy } from './placement/types.js';
import { planMoves, type Move } from './reconcile.js';
import { trackRecoveries } from './recovery.js';
import { buildView, memberView, viewPublisher } from './view.js';

/** The risk at which a PNode is drained before it fails (supervisor/health.ts). */
export const DEFAULT_DRAIN_AT_RISK = 0.6;
/** A PNode drained for its risk takes VNodes again after this long below a third of the threshold. */
const CALM_BEFORE_UNDRAIN_MS = 30_000;

export interface SupervisorOptions {
  nc: NatsConnection;
  /** @default timeout detector, `detectMs` */
  detector?: FailureDetector;
  /** Silence before a PNode is declared dead; also the grace period after start. @default 1000 */
  detectMs?: number;
  /** @default least-loaded */
  placement?: PlacementStrategy;
  /** Reconcile period. @default 100 */
  tickMs?: number;
  /** VNodes moved at most to a newly joined PNode (bounded rebalance). @default 2 */
  rebalanceMoves?: number;
  /** @default silent */
  log?: ComponentLog;
  /** This supervisor's name, unique among the cluster's supervisors. @default supervisor-<host>-<pid> */
  name?: string;
  /** The leader's lease (supervisor/leadership.ts): a standby takes over after this much silence. @default 1500 */
  leaseMs?: number;
  /**
   * Drain a PNode proactively once its smoothed risk (supervisor/health.ts) reaches this;
   * `null` never does. @default 0.6
   */
  drainAtRisk?: number | null;
  /** The PNodes' heartbeat period (for the heartbeat-gap signal). @default 250 */
  heartbeatMs?: number;
  /** Share of each VNode's ledger segments re-executed by another PNode (supervisor/audit.ts); 0 = none. @default 0.05 */
  auditShare?: number;
  /** Called when this supervisor becomes the leader (true) or stops being it (false): what only the leader serves (registrar, dashboard). */
  onLeadership?: (leading: boolean) => Promise<void>;
}

export interface Supervisor {
  /** The current membership view. */
  view(): SupervisorView;
  /** Whether this supervisor leads now. */
  leading(): boolean;
  stop(): Promise<void>;
}

// Long on purpose (~110 lines): this is only the composition of the concerns beside it —
// each of them is its own file — plus the tick that runs them in order; split further,
// the order of one tick would be spread over files.
export async function startSupervisor(o: SupervisorOptions): Promise<Supervisor> {
  const { nc } = o;
  const log = o.log ?? silentLog;
  const detectMs = o.detectMs ?? 1000;
  const placement = o.placement ?? createLeastLoadedPlacement();
  const buckets = await openBuckets(nc);
  const reject = rejectOnce((line) => log.line(line, 'warn'));
  const startedAt = Date.now();
  const name = o.name ?? `supervisor-${hostname()}-${process.pid}`;
  const leadership = createLeadership({ kv: buckets.members, name, leaseMs: o.leaseMs, log: log.line });
  const emit = (e: ClusterEvent) => {
    if (!leadership.valid()) return; // a standby says nothing
    nc.publish(Subject.events('supervisor'), JSON.stringify(e));
    log.event(e);
  };

  const owners = await mirrorBucket<OwnershipRecord>(buckets.owners, parseOwnershipRecord, reject, { refuse: termRegression });
  // Deployment records are under plain names; dotted keys in that bucket are not ours.
  const deployments = await mirrorBucket<DeploymentRecord>(buckets.deployments, parseDeploymentRecord, reject, { keep: (k) => !k.includes('.'), settleMs: 0 });
  const ownedBy = (pnode: string) => [...owners.records].filter(([, r]) => r.pnode === pnode).map(([k]) => k);
  // Drains first: a heartbeat of a new incarnation (membership) ends a drain. A drain
  // request before membership exists knows no PNode yet.
  // Only the leader serves drains (handleDrains answers requests): started with leadership.
  const risk = trackRisk({ heartbeatMs: o.heartbeatMs ?? 250, detectMs });
  const drainAt = o.drainAtRisk === undefined ? DEFAULT_DRAIN_AT_RISK : o.drainAtRisk;
  /** PNodes drained for their risk → since when they have been calm (0: not yet). */
  const riskDrained = new Map<string, number>();
  let membership: Membership | undefined;
  let drains: Drains | undefined;
  let audits: Audits | undefined;
  const auditShare = o.auditShare ?? DEFAULT_AUDIT_SHARE;
  const startDrains = () => handleDrains({ nc, members: buckets.members, reject, knownPNodes: () => [...(membership?.members.keys() ?? [])], ownedBy, log: log.line });
  const noDrains: ReadonlySet<string> = new Set();
  membership = watchMembership({
    nc,
    detector: o.detector ?? createTimeoutDetector({ timeoutMs: detectMs }),
    reject,
    onJoined: (pnode, at) => emit({ type: 'joined', pnode, at }),
    onNewIncarnation: (pnode) => {
      if (audits?.quarantined.has(pnode)) return; // caught lying: a restart changes nothing
      drains?.forget(pnode);
      riskDrained.delete(pnode);
    },
    onHeartbeat: (hb, at) => risk.heartbeat(hb, at),
  });
  const members = membership;
  // Heartbeats sent while this supervisor was away from NATS never reach it.
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type !== 'reconnect') continue;
      members.excuse(Date.now());
      log.line('reconnected to NATS: the silence while away counts against no PNode');
    }
  })();
  const recoveries = trackRecoveries();
  /** VNode → the PNode that gave up on it (escalated) or could not host it (refused). */
  const escalated = new Map<string, string>();
  const events = subscribeClusterEvents(nc, (e, source) => {
    // What a PNode says of itself counts only on its own subject (only its credentials may publish there).
    if ('pnode' in e && source !== e.pnode && source !== 'supervisor') return;
    if (e.type === 'activated') {
      recoveries.activated(e.vnode, Date.now(), e.replayed);
      drains?.activated(e.vnode);
    }
    if (e.type === 'escalated' || e.type === 'refused') escalated.set(e.vnode, e.pnode);
  });

  const view = () => buildView(members.members.values(), drains?.draining ?? noDrains, { name, term: leadership.term }, risk.of, audits);
  const publishView = viewPublisher(buckets.members, view);

  /** Every VNode of every deployment the cluster hosts (not those a trainer hosts itself). */
  const wantedVNodes = () =>
    [...deployments.records]
      .filter(([, d]) => !d.hostedBy)
      .sort(([a], [b]) => a.localeCompare(b))
      .flatMap(([dep, d]) =>
        deployedVNodes(d.spec, d.shapes).map((v) => ({ vnode: `${dep}.${v.index}`, type: v.type, bytes: d.shapes?.[v.index]?.stateBytes, ...(v.group ? { group: `${dep}.${v.group}` } : {}) })),
      );

  async function apply(m: Move): Promise<void> {
    const [dep, index] = m.vnode.split('.');
    const was = owners.records.get(m.vnode);
    const from = was?.pnode ?? null;
    // Auth on: the new owner's key (from its heartbeat) is recorded for the epoch first.
    const key = members.members.get(m.pnode)?.hb.publicKey;
    // With auth on, an owner no key is known for could sign nothing it sends: wait for its heartbeat's.
    if (!key && signerOf(nc)) return log.line(`not assigning ${m.vnode} to ${m.pnode} yet: no key heard from it`, 'warn');
    const generation = key ? (await readDeployment(buckets.deployments, dep))?.generation : undefined;
    if (!leadership.valid()) return; // the lease ran out meanwhile: whoever leads now decides
    // A planned move from a live owner is a handover: the new owner waits for the old one's last checkpoint.
    const planned = m.reason === 'drain' || m.reason === 'rebalance';
    const handover = planned && from !== null && members.members.get(from)?.alive ? from : undefined;
    const record = await assignOwner(buckets.owners, dep, Number(index), m.pnode, {
      knownEpoch: was?.epoch,
      signed: key && generation ? { epochs: buckets.epochs, publicKey: key, generation } : undefined,
      term: leadership.term,
      handover,
    });
    owners.records.set(m.vnode, record); // ahead of the watch: the next tick must see it
    escalated.delete(m.vnode);
    emit({ type: 'assigned', vnode: m.vnode, pnode: m.pnode, epoch: record.epoch, from, reason: m.reason, at: Date.now() });
    if (from !== null) telemetryMetrics().migrations.add(1, { 'dcnr.reason': m.reason });
  }

  let graceOver = false;
  let leading = false;
  /** Take on or give up what only the leader does, when the lease says so. */
  async function follow(role: 'leader' | 'standby'): Promise<void> {
    if ((role === 'leader') === leading) return;
    leading = role === 'leader';
    if (leading) {
      drains = await startDrains();
      if (auditShare > 0) {
        audits = await startAudits({
          nc,
          members: buckets.members,
          reject,
          share: auditShare,
          alive: () => [...members.members.values()].filter((m) => m.alive).map((m) => m.hb.pnode),
          quarantine: (pnode) => {
            riskDrained.delete(pnode);
            drains?.begin(pnode, 'quarantined: spot re-execution found it wrong');
          },
          emit,
          log: log.line,
        });
      }
      members.takeJoined(); // joined while standing by: they are not newcomers to rebalance toward
      emit({ type: 'elected', supervisor: name, pid: process.pid, term: leadership.term, at: Date.now() });
    } else {
      drains?.stop();
      drains = undefined;
      audits?.stop();
      audits = undefined;
    }
    await o.onLeadership?.(leading);
  }

  /** Drain the riskiest PNode past the threshold (one at a time); give back those calm for CALM_BEFORE_UNDRAIN_MS. */
  function judgeRisk(drains_: Drains, now: number): void {
    const alive = [...members.members.values()].filter((m) => m.alive);
    const pnodes = alive.map((m) => ({ id: m.hb.pnode, risk: risk.of(m.hb.pnode)?.risk ?? 0, owns: ownedBy(m.hb.pnode).length, draining: drains_.draining.has(m.hb.pnode), riskDrained: riskDrained.has(m.hb.pnode) }));
    // A false alarm that is over gives its PNode back at once if a real one needs somewhere to go.
    const back = reclaimCandidate({ pnodes, drainAt: drainAt! });
    if (back) {
      riskDrained.delete(back);
      drains_.forget(back);
      const p = pnodes.find((x) => x.id === back)!;
      p.draining = p.riskDrained = false;
      emit({ type: 'recovered-health', pnode: back, risk: p.risk, at: now });
    }
    const victim = drainCandidate({ pnodes, drainAt: drainAt! });
    if (victim) {
      const r = risk.of(victim)!;
      drains_.begin(victim, `risk ${r.risk}`);
      riskDrained.set(victim, 0);
      emit({ type: 'at-risk', pnode: victim, risk: r.risk, signals: r.signals, at: now });
    }
    for (const [pnode, calmSince] of riskDrained) {
      const r = risk.of(pnode)?.risk ?? 1;
      if (r >= drainAt! / 3) riskDrained.set(pnode, 0);
      else if (calmSince === 0) riskDrained.set(pnode, now);
      else if (now - calmSince >= CALM_BEFORE_UNDRAIN_MS) {
        riskDrained.delete(pnode);
        drains_.forget(pnode);
        emit({ type: 'recovered-health', pnode, risk: r, at: now });
      }
    }
  }

  async function tick(): Promise<void> {
    await follow(await leadership.check());
    if (!leadership.valid()) {
      // Standing by: follow, judge nothing.
      members.takeJoined();
      return;
    }
    const drains_ = drains!;
    // Hear before judging: a round trip to the server reads every heartbeat it delivered
    // before it. A supervisor that was itself stalled (descheduled on a loaded machine)
    // wakes with its timer due and the heartbeats of the stall still unread in the
    // socket; judged first, every PNode would look silent. A flush that fails (NATS away)
    // throws: no judging while deaf.
    await nc.flush();
    const now = Date.now();
    if (now - startedAt < detectMs) {
      // Grace: listen to heartbeats before judging. PNodes first heard now were there
      // before this supervisor (a restart): not newcomers to rebalance toward.
      members.takeJoined();
      return;
    }
    const dead = members.sweep(now);
    for (const m of dead) {
      risk.forget(m.hb.pnode);
      riskDrained.delete(m.hb.pnode);
      emit({ type: 'dead', pnode: m.hb.pnode, at: now, lastHeartbeat: m.lastHeartbeat });
      recoveries.died(m.hb.pnode, now, m.lastHeartbeat, ownedBy(m.hb.pnode));
    }
    // Owners never heard in the whole grace died while no supervisor watched (before this
    // one started, or during its grace): dead now, their last heartbeat before our start.
    let unheard: string[] = [];
    if (!graceOver) {
      graceOver = true;
      const clusterHosted = new Set(wantedVNodes().map((w) => w.vnode)); // not a trainer's own (`hostedBy`)
      const owning = [...owners.records].filter(([k]) => clusterHosted.has(k)).map(([, r]) => r.pnode);
      unheard = [...new Set(owning)].filter((p) => !members.members.has(p)).sort();
      for (const pnode of unheard) {
        emit({ type: 'dead', pnode, at: now, lastHeartbeat: startedAt });
        recoveries.died(pnode, now, startedAt, ownedBy(pnode));
      }
    }
    // A death reaches readers of the view (dcnr status, the dashboard) at once.
    if (dead.length || unheard.length) await publishView();

    if (drainAt !== null) judgeRisk(drains_, now);

    const wanted = wantedVNodes();
    const wantedSet = new Set(wanted.map((w) => w.vnode));
    const current = new Map([...owners.records].filter(([k]) => wantedSet.has(k)).map(([k, r]) => [k, r.pnode]));
    const candidates = [...members.members.values()].filter((m) => m.alive && !drains_.draining.has(m.hb.pnode) && !audits?.quarantined.has(m.hb.pnode)).map((m) => memberView(m, drains_.draining, risk.of, audits));
    const moves = planMoves({ candidates, wanted, current, escalated, draining: drains_.draining, joined: members.takeJoined(), placement, rebalanceMoves: o.rebalanceMoves });
    for (const m of moves) await apply(m);

    recoveries.settle(emit);
    drains_.settle(now, wantedSet);
  }

  let stopped = false;
  let ticks = 0;
  const loop = (async () => {
    while (!stopped) {
      try {
        await tick();
        if (ticks++ % 3 === 0 && leadership.valid()) await publishView();
      } catch (err) {
        if (!stopped) log.line(`reconcile failed: ${(err as Error).message}`, 'warn');
      }
      await new Promise((r) => setTimeout(r, o.tickMs ?? 100));
    }
  })();
  log.line(`supervisor ${name} (pid ${process.pid}) up: detector timeout ${detectMs} ms, placement ${placement.name}, drain at risk ${drainAt ?? 'never'}`);

  return {
    view,
    leading: () => leadership.valid(),
    async stop() {
      stopped = true;
      await loop;
      // A graceful stop hands the lease over at once.
      await leadership.resign().catch(() => {});
      members.stop();
      drains?.stop();
      audits?.stop();
      events.unsubscribe();
      owners.stop();
      deployments.stop();
    },
  };
}
