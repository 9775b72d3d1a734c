/**
 * The DCNR wire protocol, as data, in one file (invariant 6).
 *
 * Every subject, stream, KV bucket, header name and message kind that crosses a
 * process boundary is named here and nowhere else. This file imports nothing of
 * the project: the supervisor, the PNodes and external tools all read it.
 *
 * A tensor message is a NATS message whose payload is the raw little-endian
 * float32 data and whose metadata (version, kind, deployment, vnode, seq,
 * shape, dtype, epoch, traceparent) travels in NATS headers.
 */

/** Bumped on any incompatible change to subjects, headers or payload layout. */
export const PROTOCOL_VERSION = 1;

/** Message kinds, and the mailbox port each one is delivered to. */
export const MessageKind = {
  /** Activations flowing forward; payload = batch×features tensor. */
  Forward: 'fwd',
  /** Gradients flowing backward; payload = batch×features tensor. */
  Backward: 'bwd',
  /** Training targets for a loss VNode; payload = batch×outputs tensor. */
  Target: 'target',
  /** End of the forward stream: no seq at or after this one will follow. Empty payload. */
  End: 'end',
  /**
   * Federated rounds (runtime/federated/): a replica's layer sends its aggregator the
   * change of its parameters over round `seq`, compressed; payload = a bytes frame.
   */
  Delta: 'delta',
  /** Federated rounds: an aggregator sends each replica's layer round `seq`'s outer update, compressed; payload = a bytes frame. */
  Sync: 'sync',
} as const;
export type MessageKind = (typeof MessageKind)[keyof typeof MessageKind];
export const MESSAGE_KINDS: readonly MessageKind[] = Object.values(MessageKind);

/**
 * A VNode's input ports. A VNode of a graph (runtime/model.ts) has one forward port per
 * input and one backward port per consumer of its output: slot 0 is `fwd` / `bwd`, slot
 * n > 0 is `fwd<n>` / `bwd<n>` (so a chain's subjects are what they always were). A loss
 * has `fwd` and `target`. `end` travels on the `fwd` port (slot 0 only), behind the last
 * forward.
 */
export type Port = 'fwd' | 'bwd' | 'target' | 'sync' | 'delta' | `fwd${number}` | `bwd${number}` | `delta${number}`;
/** The slot-0 port of each kind. */
export const PORT_OF_KIND: Readonly<Record<MessageKind, Port>> = {
  fwd: 'fwd',
  end: 'fwd',
  bwd: 'bwd',
  target: 'target',
  delta: 'delta',
  sync: 'sync',
};
/** Most ports a VNode has per direction (inputs, or consumers of its output). */
export const MAX_PORT_SLOTS = 64;
/** The forward port of input slot `slot`. */
export const fwdPort = (slot: number): Port => (slot === 0 ? 'fwd' : `fwd${slot}`);
/** The backward port of consumer slot `slot`. */
export const bwdPort = (slot: number): Port => (slot === 0 ? 'bwd' : `bwd${slot}`);
/** The delta port of replica `slot` at an aggregator (federated rounds). */
export const deltaPort = (slot: number): Port => (slot === 0 ? 'delta' : `delta${slot}`);
export type PortDir = 'fwd' | 'bwd' | 'target' | 'sync' | 'delta';
/** A port's direction and slot, or null when `port` names no port. */
export function parsePort(port: string): { dir: PortDir; slot: number } | null {
  if (port === 'target' || port === 'sync') return { dir: port, slot: 0 };
  const m = /^(fwd|bwd|delta)([1-9][0-9]?)?$/.exec(port);
  if (!m) return null;
  const slot = m[2] ? Number(m[2]) : 0;
  return slot < MAX_PORT_SLOTS ? { dir: m[1] as 'fwd' | 'bwd' | 'delta', slot } : null;
}
/** Whether a message of `kind` may travel on `port` (`end` only on slot 0). */
export function kindFitsPort(kind: MessageKind, port: Port): boolean {
  if (kind === 'end') return port === 'fwd';
  const p = parsePort(port);
  return !!p && p.dir === PORT_OF_KIND[kind];
}

/** Header names. NATS headers are case-insensitive on the wire; we always write these spellings. */
export const Header = {
  Version: 'Dcnr-Version',
  Kind: 'Dcnr-Kind',
  Deployment: 'Dcnr-Deployment',
  VNode: 'Dcnr-VNode',
  Seq: 'Dcnr-Seq',
  Shape: 'Dcnr-Shape',
  DType: 'Dcnr-DType',
  /** The sender's ownership epoch; diagnostic, since receivers de-duplicate by seq. */
  Epoch: 'Dcnr-Epoch',
  /** The VNode (or `trainer`) that sent the message. */
  From: 'Dcnr-From',
  /** W3C trace context, so one training step is one trace across PNodes. */
  TraceParent: 'traceparent',
  /** Set on dead-lettered copies: why the message was rejected. */
  Error: 'Dcnr-Error',
  /** Set on dead-lettered copies: the subject the message was sent to. */
  OriginalSubject: 'Dcnr-Original-Subject',
  /** Set on dead-lettered copies: the generation of the run whose VNode rejected it (a rolled-back run's rejections are told apart). */
  RejectedIn: 'Dcnr-Rejected-In',
  /** With auth on: the sender's nkey (`U…`) and its ed25519 signature (runtime/security/signing.ts). */
  Signer: 'Dcnr-Signer',
  Signature: 'Dcnr-Sig',
  /** The sending process's own HMAC tag: lets a receiver in that same process skip the ed25519 check. */
  LocalTag: 'Dcnr-Local',
  /**
   * A message's identity (deployment, receiver, port, kind, seq, and with auth the
   * signature's tag): how the JetStream copy of a message handed over in memory is known.
   * NOT JetStream's `Nats-Msg-Id` on mailbox messages: on a replicated work-queue stream,
   * nats-server 2.9.10 de-duplicates on each replica separately, and a restarted replica
   * has forgotten the ids of consumed messages — a re-send under the same id is then
   * stored on one replica and dropped on the others, and the replicas' sequence numbers
   * diverge (misdelivered, lost and stuck messages; fixed upstream in 2.10.14,
   * nats-io/nats-server#5287; scenarios/README.md, kill-nats-node). Re-sent outputs are
   * dropped by the receiver's watermark instead.
   */
  MsgId: 'Dcnr-Msg-Id',
  /** JetStream's de-duplication header: only on the metrics stream (limits retention: it keeps what it de-duplicates against). */
  JetStreamMsgId: 'Nats-Msg-Id',
} as const;

/** Tensors: raw little-endian float32. */
export const DTYPE_F32 = 'f32';
/**
 * An opaque frame (federated `delta` and `sync`: compressed updates), carried in a
 * float32 view padded to 4 bytes; the receiver's decoder validates it
 * (runtime/federated/frame.ts). No other kind may use it.
 */
export const DTYPE_BYTES = 'bytes';
export const DTYPES = [DTYPE_F32, DTYPE_BYTES] as const;
export type DType = (typeof DTYPES)[number];
/** The dtype a message of `kind` carries. */
export const dtypeOf = (kind: MessageKind): DType => (kind === 'delta' || kind === 'sync' ? DTYPE_BYTES : DTYPE_F32);

/** Limits every inbound message is checked against. */
export const Limits = {
  /**
   * Largest tensor payload accepted, in bytes: 8 MiB. NATS's default max_payload is
   * 1 MiB; the servers DCNR starts (and docker-compose's) allow 8 MiB, and a sender
   * checks the server it is connected to (runtime/envelope.ts).
   */
  maxTensorBytes: 8 * 1024 * 1024,
  /** Largest rank of a tensor. */
  maxRank: 4,
  /** Largest seq number (seq is a JS safe integer). */
  maxSeq: Number.MAX_SAFE_INTEGER,
  /** Largest KV value written in one piece; bigger blobs are chunked. Leaves room under 1 MiB for headers. */
  kvChunkBytes: 512 * 1024,
} as const;

/** Deployment and VNode ids: safe as both NATS subject tokens (sans dots) and KV keys. */
export const NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** KV buckets. */
export const Bucket = {
  /** VNode state: `<vnodeKey>.meta` (JSON) and `<vnodeKey>.t.<tensor>.<epoch>.<version>[.c<i>]` (raw bytes). */
  State: 'dcnr_state',
  /** Ownership records `{pnode, epoch}` under `<vnodeKey>`; written by the supervisor (or the local trainer). */
  Owners: 'dcnr_owners',
  /** Deployed model specs (`DeploymentRecord`) under `<deployment>`. */
  Deployments: 'dcnr_deployments',
  /** PNode registrations under `<pnode>`, and the supervisor's own state under `supervisor.*`. */
  Members: 'dcnr_members',
  /**
   * Who owned a VNode at each epoch, with that owner's key (`EpochRecord` under
   * `<deployment>.<generation>.<index>.<epoch>`), written before the ownership record that starts the epoch;
   * only the supervisor (or the local trainer) may write it. Receivers check signatures
   * against it (runtime/security/verifier.ts).
   */
  Epochs: 'dcnr_epochs',
} as const;

/** Keys of the supervisor's state in the members bucket. */
export const SupervisorKey = {
  /** The membership view: `SupervisorView`. */
  view: 'supervisor.view',
  /** PNodes being drained: JSON string[]. */
  draining: 'supervisor.draining',
  /** The leader's lease: `LeaseRecord` (supervisor/leadership.ts). */
  lease: 'supervisor.lease',
  /** Quarantined PNodes (supervisor/audit.ts): JSON string[]. */
  quarantined: 'supervisor.quarantined',
  /** Reputation per PNode from spot re-execution: JSON { [pnode]: { verified, failed } }. */
  reputation: 'supervisor.reputation',
} as const;

/** Streams. */
export const Stream = {
  /** Durable mailboxes of every VNode of one deployment (work-queue retention: acked = gone). */
  mailbox: (deployment: string) => `DCNR_MBOX_${deployment}`,
  /** Per-step metrics (loss) of one deployment; limits retention so late readers replay them. */
  metrics: (deployment: string) => `DCNR_METRICS_${deployment}`,
  /** Rejected messages, kept with the reason (invariant 5). */
  deadLetter: 'DCNR_DLQ',
  /** The ledger of one deployment: an entry per VNode checkpoint, hash-chained per VNode (runtime/ledger/). */
  ledger: (deployment: string) => `DCNR_LEDGER_${deployment}`,
  /** Tensors the ledger names (inputs, anchor states), content-addressed: one message per subject. */
  evidence: (deployment: string) => `DCNR_EVIDENCE_${deployment}`,
} as const;

/** Subjects. Tokens are deployment names and VNode indices, both NAME_PATTERN-safe. */
export const Subject = {
  /** A VNode's mailbox port. */
  mailbox: (deployment: string, index: number, port: Port) => `dcnr.mbox.${deployment}.${index}.${port}`,
  /** Every port of one VNode's mailbox. */
  mailboxVNode: (deployment: string, index: number) => `dcnr.mbox.${deployment}.${index}.*`,
  /** Every mailbox of a deployment (the mailbox stream's filter). */
  mailboxAll: (deployment: string) => `dcnr.mbox.${deployment}.>`,
  /** A VNode's ledger entries. */
  ledger: (deployment: string, index: number) => `dcnr.ledger.${deployment}.${index}`,
  ledgerAll: (deployment: string) => `dcnr.ledger.${deployment}.>`,
  /** Every deployment's ledger entries (the supervisor's spot re-execution reads them all). */
  ledgerEvery: 'dcnr.ledger.>',
  /** Chunk `k` of the evidence tensor with sha256 `sha` (base64url: a subject-safe token). */
  evidence: (deployment: string, sha: string, k: number) => `dcnr.evidence.${deployment}.${sha}.${k}`,
  evidenceAll: (deployment: string) => `dcnr.evidence.${deployment}.>`,
  /** Per-step metrics of a deployment. */
  metrics: (deployment: string) => `dcnr.metrics.${deployment}`,
  /** Dead-lettered messages: `dcnr.dlq.<deployment-or-unknown>`. */
  deadLetter: (deployment: string) => `dcnr.dlq.${deployment}`,
  deadLetterAll: 'dcnr.dlq.>',
  /** Rejection notices (JSON), published as they happen, for operators and senders. */
  errors: (deployment: string) => `dcnr.errors.${deployment}`,
  /** PNode heartbeats (JSON `Heartbeat`), core NATS. */
  heartbeat: (pnode: string) => `dcnr.hb.${pnode}`,
  heartbeatAll: 'dcnr.hb.*',
  /** Events (JSON `ClusterEvent`) from PNodes and the supervisor, core NATS. */
  events: (source: string) => `dcnr.events.${source}`,
  eventsAll: 'dcnr.events.*',
  /** Requests to the supervisor (JSON request/reply). */
  control: (verb: 'drain' | 'view' | 'revoke') => `dcnr.ctl.${verb}`,
  /** Fault-injection requests to one PNode (`FaultControlRequest`); only PNodes started with DCNR_FAULT_INJECTION=1 listen. */
  faultControl: (pnode: string) => `dcnr.ctl.fault.${pnode}`,
  /** Spot re-execution requests to one PNode (supervisor/audit.ts → runtime/pnode/audit.ts). */
  audit: (pnode: string) => `dcnr.ctl.audit.${pnode}`,
} as const;

/** What a PNode can do: measured at start-up, `gflops` re-measured while it runs. */
export interface PNodeCapacity {
  cores: number;
  memoryMb: number;
  kernelMode: string;
  /** Matmul GFLOP/s (128², this PNode's kernels): the median of its recent probes (runtime/pnode/health.ts), the start-up one until there are three. */
  gflops: number;
  /** VNodes it accepts at most. */
  maxVNodes: number;
  /** The VNode types it can host (built-in and loaded with `--types`): placement only gives it those. */
  types: string[];
}

/** A PNode's heartbeat. */
export interface Heartbeat {
  pnode: string;
  pid: number;
  /** Sender's clock, ms since epoch. */
  at: number;
  capacity: PNodeCapacity;
  /** `<deployment>.<index>` of every VNode it hosts now. */
  vnodes: string[];
  counters: { fencedWrites: number; rejected: number; restarts: number; escalations: number; activations: number };
  /** The nkey it signs with (auth on). Only its own credentials may publish its heartbeat subject. */
  publicKey?: string;
  /** Health signals over the last window (runtime/pnode/health.ts); absent from PNodes that predate them. */
  health?: PNodeHealth;
}

/**
 * A PNode's own health signals (runtime/pnode/health.ts), measured over the last
 * `windowMs`; the supervisor turns them into a risk score (supervisor/health.ts).
 */
export interface PNodeHealth {
  windowMs: number;
  /** Event-loop delay, 99th percentile over the window, ms. */
  loopLagMs: number;
  /** Share of the window spent in garbage collection pauses. */
  gcShare: number;
  /** V8 heap in use over its limit. */
  heapShare: number;
  /** The machine's free memory over its total. */
  freeMemShare: number;
  /** The latest kernel probes' time over this PNode's own start-up baseline (1 = as fast as at start). */
  kernelDrift: number;
}

/** One PNode as the supervisor sees it. */
export interface MemberView {
  id: string;
  pid: number;
  alive: boolean;
  draining: boolean;
  capacity: PNodeCapacity;
  vnodes: string[];
  lastHeartbeat: number;
  counters: Heartbeat['counters'];
  /** Smoothed risk of failure in [0, 1] (supervisor/health.ts) and the signals that make it up. */
  risk?: number;
  riskSignals?: Record<string, number>;
  /** Spot re-execution of its work (supervisor/audit.ts): segments that verified, and that did not. */
  reputation?: { verified: number; failed: number };
  /** Caught computing wrong results: it gets no VNodes, for good. */
  quarantined?: boolean;
}

/** The leading supervisor's lease, under `SupervisorKey.lease` (supervisor/leadership.ts). */
export interface LeaseRecord {
  /** The leader's name (`--name`, unique per supervisor). */
  holder: string;
  pid: number;
  /** Increases by one at every change of leader. */
  term: number;
  /** The holder's clock at its last renewal (for people; nobody computes with it). */
  renewedAt: number;
}

/** The supervisor's membership view, kept in KV under `SupervisorKey.view`. */
export interface SupervisorView {
  at: number;
  supervisorPid: number;
  /** The leading supervisor's name and term (absent in views of older supervisors). */
  leader?: { name: string; term: number };
  pnodes: MemberView[];
}

/** Cluster events, on `Subject.events(source)`; timestamps are the sender's clock (ms). */
export type ClusterEvent =
  | { type: 'joined'; pnode: string; at: number }
  | { type: 'dead'; pnode: string; at: number; lastHeartbeat: number }
  | { type: 'assigned'; vnode: string; pnode: string; epoch: number; from: string | null; reason: string; at: number }
  /**
   * Running again and caught up: `ms` from activation to the end of its replay of
   * `replayed` messages (`replayMs`): its mailbox's backlog after the checkpoint it restored
   * (KV revision `restoredRevision`). After a handover (that revision is the one its old
   * owner `released` with) the backlog is input nobody applied yet, not work done twice.
   */
  | { type: 'activated'; vnode: string; pnode: string; epoch: number; at: number; ms: number; replayed?: number; replayMs?: number; restoredRevision?: number }
  /** A PNode was assigned a VNode it cannot host (e.g. a type it does not know): the supervisor places it elsewhere. */
  | { type: 'refused'; vnode: string; pnode: string; error: string; at: number }
  /**
   * `epoch`, `generation`: what it ran under (a successor handed over to waits for this:
   * runtime/pnode/ownership.ts); `revision`: the KV revision of the checkpoint it stopped
   * with (a successor whose `activated.restoredRevision` equals it lost nothing).
   */
  | { type: 'released'; vnode: string; pnode: string; at: number; reason: string; epoch?: number; generation?: number; revision?: number }
  /** Idle past the PNode's passivation time: out of memory until its next message (then `activated` again). */
  | { type: 'passivated'; vnode: string; pnode: string; at: number }
  /** `write`: a state write refused by compare-and-set; `mailbox`: its consumer was taken; `activation`: outranked at start. */
  | { type: 'fenced'; vnode: string; pnode: string; epoch: number; at: number; cause: 'write' | 'mailbox' | 'activation' }
  | { type: 'escalated'; vnode: string; pnode: string; error: string; at: number }
  | { type: 'rejected'; vnode: string; pnode: string; error: string; at: number }
  /** A dead PNode's VNodes all run again elsewhere: detection = death declared − last heartbeat; resume = last re-activation (replay included) − death declared; `replayed` messages in all. */
  | { type: 'recovered'; pnode: string; vnodes: string[]; detectMs: number; resumeMs: number; replayed?: number; at: number }
  /** A supervisor took the lease (supervisor/leadership.ts): it places and migrates from now on. */
  | { type: 'elected'; supervisor: string; pid: number; term: number; at: number }
  /** A PNode's risk crossed the drain threshold (supervisor/health.ts): it is drained before it fails. `signals`: each signal's share of the risk. */
  | { type: 'at-risk'; pnode: string; risk: number; signals: Record<string, number>; at: number }
  /** A PNode drained for its risk has been healthy long enough: it takes VNodes again. */
  | { type: 'recovered-health'; pnode: string; risk: number; at: number }
  /** A spot re-execution (supervisor/audit.ts) found `pnode`'s update of `vnode` at `seq` wrong: it is drained and gets nothing again. */
  | { type: 'quarantined'; pnode: string; vnode: string; seq: number; auditor: string; reason: string; at: number }
  /** A spot re-execution checked `messages` messages of `vnode` (messages `from`…) computed by `pnodes`. */
  | { type: 'audited'; vnode: string; generation: number; from: number; messages: number; pnodes: string[]; auditor: string; ok: boolean; at: number };

/**
 * A fault-injection request on `Subject.faultControl(pnode)`: degrade this PNode. A field
 * left out keeps its current value; the reply gives every value in force.
 */
export interface FaultControlRequest {
  /** A delay before every message this PNode handles, ms; 0 ends it. At most 60000. */
  messageDelayMs?: number;
  /** Every kernel call takes this many times as long (the extra time spent busy). 1 = normal; at most 100. */
  kernelSlowdown?: number;
  /** The event loop is held busy this many ms in every 500 ms; 0 = never. At most 450. */
  loopBlockMs?: number;
  /** A liar (byzantine-pnode): every gradient it sends is scaled by this, and signed as if right. 1 = honest; in [0.5, 2]. */
  corruptGradients?: number;
}
export interface FaultControlReply {
  ok: boolean;
  pnode: string;
  messageDelayMs: number;
  kernelSlowdown: number;
  loopBlockMs: number;
  corruptGradients: number;
  error?: string;
}

/** A drain request on `Subject.control('drain')` and its reply. */
export interface DrainRequest {
  pnode: string;
}
export interface DrainReply {
  ok: boolean;
  pnode: string;
  moved: string[];
  error?: string;
}

/** The KV key under which a VNode's data lives. VNode ids contain dots, KV keys may too. */
export const vnodeId = (deployment: string, index: number, type: string) => `${deployment}.${index}.${type}`;
export const stateMetaKey = (deployment: string, index: number) => `${deployment}.${index}.meta`;
/**
 * A state blob's key: unique per write attempt (`nonce`), not only per (epoch, version).
 * Epochs restart with each generation of a deployment and a VNode restarted in its
 * process writes under the same epoch, so (epoch, version) alone named two different
 * writes' blobs alike — and one writer's purge (a fenced attempt's, an earlier run's
 * removal) deleted the other's blobs (found by kill-nats on names-gpt).
 */
export const stateBlobKey = (deployment: string, index: number, tensor: string, epoch: number, version: number, nonce: string) =>
  `${deployment}.${index}.t.${tensor}.${epoch}.${version}.${nonce}`;
/** One initial parameter of a deployment started from a file (`dcnr train --init`): raw float32, chunked like state blobs. */
export const stateInitKey = (deployment: string, index: number, param: string) => `${deployment}.${index}.init.${param}`;
export const ownerKey = (deployment: string, index: number) => `${deployment}.${index}`;
/** Epochs restart with each generation of a deployment (a fresh run under the same name): both name the record. */
export const epochKey = (deployment: string, generation: number, index: number, epoch: number) => `${deployment}.${generation}.${index}.${epoch}`;

/** JetStream message id used to de-duplicate re-sent outputs (a resend after a crash or a move). */
export const messageId = (deployment: string, index: number, port: Port, kind: MessageKind, seq: number) =>
  `${deployment}.${index}.${port}.${kind}.${seq}`;

/** The metric record a loss VNode publishes per step (JSON payload on `Subject.metrics`). */
export interface StepMetric {
  seq: number;
  loss: number;
  /** Batch size the loss was averaged over. */
  batch: number;
  vnode: string;
}

/** The rejection notice published on `Subject.errors` (JSON). */
export interface RejectionNotice {
  subject: string;
  vnode: string | null;
  error: string;
  at: string;
}
