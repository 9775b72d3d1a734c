/**
 * The fault interface. A fault kind is one file in scenarios/faults/ exporting a
 * {@link FaultKind}; scenarios/faults/index.ts registers it with one line. The
 * runner calls `inject` when training reaches the fault's `atStep`.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { ResolvedModel } from '../../runtime/model.js';
import type { Rng } from '../../runtime/rng.js';
import type { ScenarioCluster } from '../runner/cluster.js';
import type { Authority } from '../../runtime/security/authority.js';

/** What the private cluster must provide for a fault kind. */
export interface ClusterNeeds {
  /** A 3-node JetStream cluster with R3 buckets and streams instead of one server. */
  natsCluster?: boolean;
  /** Every PNode reaches NATS through a loopback TCP proxy the runner can cut. */
  proxy?: boolean;
  /** PNodes accept fault-control requests (per-message delay); env DCNR_FAULT_INJECTION=1. */
  faultControl?: boolean;
  /** Supervisors to run (one leads, the others stand by). @default 1 */
  supervisors?: number;
  /** Share of ledger segments the supervisor has re-executed (supervisor/audit.ts). @default the supervisor's */
  auditShare?: number;
}

/** One entry of a scenario's fault schedule. */
export interface ScheduledFault {
  /** A registered fault kind, e.g. `kill-pnode`. */
  kind: string;
  /** Fire when this many training steps have completed. */
  atStep: number;
  /** `busiest` (default: the live PNode hosting most VNodes), `random`, `all`, or a PNode id. */
  target?: string;
  /** How long the fault lasts (pause, outage, partition, delay), in ms. Each kind has a default. */
  durationMs?: number;
  /** Kind-specific size: envelopes to inject, churn rounds, delay per message … */
  count?: number;
}

/** The cluster, connection and helpers a fault works with. */
export interface FaultContext {
  cluster: ScenarioCluster;
  /** The runner's own connection (survives NATS restarts: endless reconnects). */
  nc: NatsConnection;
  deployment: string;
  model: ResolvedModel;
  /** Seeded by the scenario's seed: the same faults every run. */
  rng: Rng;
  /** The supervisor's detection timeout. */
  detectMs: number;
  log(line: string): void;
  /** The network authority (auth on): attackers' credentials are issued from it. */
  authority: Authority | undefined;
  /** Resolve a target to live PNode ids (`all` gives several). Throws when none is alive. */
  pickPNodes(target: string | undefined): Promise<string[]>;
}

/** What a fault did, for the report. */
export interface InjectedFault {
  kind: string;
  /** What it hit: PNode id(s), `supervisor`, `nats-1` … */
  target: string;
  atStep: number;
  /** When it was injected and (for transient faults) healed, ms since epoch. */
  at: number;
  healedAt?: number;
  /** PNodes this fault should get declared dead (each must be recovered: its VNodes run elsewhere). */
  expectDead: string[];
  /** Bad envelopes injected (malformed-messages): each must be rejected and counted. */
  injectedMessages?: number;
  /** kill-supervisor-leader: ms from the leader's death to the first placement by its successor. */
  takeoverMs?: number;
  /** degrading-pnode: VNodes the PNode still owned when it died (goal 0). */
  stillOwned?: number;
  /** degrading-pnode: ms from the moment its last moved VNode ran elsewhere to its death. */
  leadMs?: number;
  /** degrading-pnode: moved VNodes that did not start from the checkpoint it released them with (goal 0: a handover, nothing applied twice). */
  lostOnMove?: number;
  /** byzantine-pnode: when the liar was caught (training step), and what the prediction needs. */
  byzantine?: { detectedAtStep: number | null; stepsToDetect: number | null; quarantined: boolean; ownedVNodes: number; segmentSteps: number };
  /** Attacks tried (hostile-client, rogue-pnode): each refused by nats-server or by a signature check. */
  attacks?: Attack[];
  detail: string;
}

/** One attack and whether it was refused (by nats-server's permissions, or by a check that must hold). */
export interface Attack {
  name: string;
  refused: boolean;
  detail: string;
}

export interface FaultKind {
  kind: string;
  description: string;
  needs?: ClusterNeeds;
  inject(ctx: FaultContext, fault: ScheduledFault): Promise<InjectedFault>;
}
