/**
 * The actor host of ONE VNode: it owns the IO around a pure VNode type and machine.
 *
 * Per message: ask the machine which input it awaits (`awaitedInput`) → take that from
 * the port's streamed mailbox → validate → tell the machine (MESSAGE / INVALID) → do
 * what the state it moved to says: skip a duplicate (`skipping.*`), dead-letter and ack
 * (`rejecting`), or compute (`processing`) → send the outputs with de-duplicating
 * message ids, without waiting for each (`publishing`) → and when the machine says a
 * checkpoint is due (`checkpointing`), capture the state and commit it in the
 * background (docs/checkpoints.md).
 *
 * A checkpoint commit waits for the sends of every message it covers, writes the
 * changed blobs and CASes the meta, then acks those messages (invariant 2). Between
 * checkpoints the state is in memory only: crash anywhere, and the new owner restores
 * the last checkpoint and replays the unacked inputs, which are still in the mailbox,
 * producing the same outputs under the same message ids (determinism), which downstream
 * de-duplicates — even those of a zombie owner. A failed CAS means a newer owner exists:
 * the actor stops at once (invariant 1). The host never reads the machine's counters to
 * decide anything.
 */
import type { JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { createActor, type Actor } from 'xstate';
import { loadInitialParameters, type InitialParameters } from './initial-parameters.js';
import type { Kernels } from './kernels/types.js';
import { Mailbox, MailboxTakenError, mailboxLimits } from './mailbox.js';
import { arityOf, checkpointPolicy, DEFAULT_VERSION_EVERY, type ResolvedModel, type ResolvedVNode } from './model.js';
import { handOver, sendMessage, type Envelope } from './envelope.js';
import { announceCovering, finishLocally, peersWorking, receiveLocally, watchLocalPeers, type LocalMessage } from './local-delivery.js';
import { Outbox, portOf, type OutboxEntry } from './outbox.js';
import { publishAcked } from './publisher.js';
import { signerOf, type Signer } from './security/signing.js';
import { expectedSender, senderCheckOf } from './security/verifier.js';
import {
  bwdPort,
  deltaPort,
  fwdPort,
  Header,
  MESSAGE_KINDS,
  parsePort,
  Subject,
  vnodeId,
  type MessageKind,
  type Port,
  type RejectionNotice,
  type StepMetric,
} from './protocol.js';
import { createRng } from './rng.js';
import { covers, nextInput } from './schedule.js';
import { startSpan, telemetryMetrics } from './telemetry.js';
import { chunkBytesFor, FencedError, StateStore, type Committed, type LedgerHead, type ParamsVersion } from './state-store.js';
import { validateMessage, type InboundMessage } from './validate.js';
import { applyStep, type StepOutput, type StepResult, type StepState } from './vnode-step.js';
import { LedgerRecorder } from './ledger/recorder.js';
import { evidenceOf } from './ledger/evidence.js';
import { aggregatorState, roundInputProblem, withReplicaState } from './federated/rounds.js';
import { awaitedInput, vnodeMachine, type CheckpointPolicy, type VNodeMachineEvent, type VNodeMachineSnapshot } from './vnode-machine.js';
import { parseMachineSnapshot, readProgress, toStateWrite } from './vnode-record.js';
import type { Tensors } from './vnode-type.js';

/** What an actor tells its host about (for metrics, logs and tests). */
export type ActorEvent =
  /**
   * Running again, caught up: `ms` from the start of activation to the end of the replay;
   * `replayed` messages of the backlog found in its mailbox applied again (those after
   * its checkpoint; duplicates in the backlog are only acked), in `replayMs` (the time
   * to take the whole backlog). `restoredRevision`: the KV revision of the checkpoint it
   * restored — equal to the `revision` its previous owner released with, it started from
   * all that owner applied (a handover: its backlog is input nobody applied yet).
   */
  | { type: 'activated'; vnode: string; epoch: number; restored: boolean; ms: number; replayed: number; replayMs: number; restoredRevision?: number }
  /** A checkpoint committed: it covers `messages` messages and wrote `bytes` bytes. */
  | { type: 'checkpointed'; vnode: string; messages: number; bytes: number; ms: number }
  | { type: 'applied'; vnode: string; kind: MessageKind; seq: number }
  | { type: 'duplicate'; vnode: string; port: Port; seq: number }
  /** The server delivered a message of another subject through this port's filtered consumer (seen on nats-server 2.9.10 after a leader change): left alone, never acked or dead-lettered — it is not ours to settle. */
  | { type: 'misdelivered'; vnode: string; port: Port; subject: string }
  | { type: 'rejected'; vnode: string; subject: string; error: string }
  /** `write`: a state write was refused by compare-and-set; `mailbox`: a newer owner took the mailbox; `activation`: outranked before starting. */
  | { type: 'fenced'; vnode: string; epoch: number; cause: 'write' | 'mailbox' | 'activation' }
  | { type: 'done'; vnode: string }
  | { type: 'passivated'; vnode: string };

export interface VNodeActorOptions {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  store: StateStore;
  kernels: Kernels;
  model: ResolvedModel;
  /** Seed of the deployment: parameter init depends on it and the VNode index only. */
  seed: number;
  /**
   * The deployment's generation (the KV revision of its record). State of an older
   * generation — left by an earlier run under the same name — is overwritten, never
   * resumed; a newer one means this actor is stale.
   */
  generation: number;
  index: number;
  /** Ownership epoch this actor runs under. */
  epoch: number;
  onEvent?: (event: ActorEvent) => void;
  /** Leave memory after this long without a message (reactivated by the host on the next). @default never */
  passivateAfterMs?: number;
  /** An injected delay before each message is handled (fault injection: a slow PNode). @default none */
  messageDelayMs?: () => number;
  /** Fault injection, a liar: every gradient it sends scaled by this (and recorded, signed, as if right). @default honest */
  corruptGradients?: () => number;
  /** The hosting PNode's id, for traces. */
  pnode?: string;
  /** The deployment's trainer key: with auth on, feeds must carry its signature. */
  trainerKey?: string;
  /** The deployment's initial parameters (`dcnr train --init`): a VNode without state starts from its own instead of `init`'s random ones. */
  init?: InitialParameters;
}

/** Metric attributes per message kind, made once (they are recorded for every message). */
const KIND_ATTRIBUTES = Object.fromEntries(MESSAGE_KINDS.map((k) => [k, { 'dcnr.kind': k }])) as Record<MessageKind, { 'dcnr.kind': MessageKind }>;

/** Why `run()` returned. */
export type ActorExit = 'done' | 'fenced' | 'stopped' | 'passivated';

type Output = StepOutput;

/**
 * Time the actors of this process spent blocked on durability — waiting for a previous
 * checkpoint commit before capturing the next (backpressure), or for sends past the
 * in-flight bound — as opposed to the background time those take (for `dcnr bench`).
 */
export const durabilityWaits = { checkpointMs: 0, sendsMs: 0 };

/**
 * Committing may take at most this share of a VNode's time: a checkpoint that took c ms
 * defers the next by at least c·(1/share − 1). Measured: wide-mlp's 70 MB checkpoints
 * at the 1 s time bound wrote 61 MB per step.
 */
const COMMIT_SHARE = 0.1;

/**
 * …but never more than this many checkpoint intervals (`checkpointMs`) apart. Without a
 * bound the deferral fed itself where a commit's size grows with the time since the last
 * (the stash and the outbox entries its receivers have not covered, who defer too):
 * names-gpt's gaps grew to seconds, its outboxes held every message since, and one
 * process reached 7.8 GB after 1,800 steps (measured; 1.3 GB at 300).
 */
const MAX_GAP_INTERVALS = 4;

/**
 * An actor yields to the event loop at least this often: handed over in memory, messages
 * come without I/O, and a chain of them would hold off timers, socket reads and the
 * health probes for as long as it ran.
 */
const YIELD_EVERY_MS = 5;

/** Sends in flight per actor, at most; past it the actor waits for the oldest (memory bound). */
const SENDS_IN_FLIGHT = 256;

/** The backlog a restored VNode replays first: per port, messages not yet taken. */
interface Replay {
  remaining: Record<Port, number>;
  /** Messages taken from the backlog (duplicates included). */
  taken: number;
  /** Of those, applied: the replay proper (a duplicate, such as the copy of a message applied in memory before a crash, is only acked). */
  applied: number;
  startedAt: number;
  activationStartedAt: number;
  restored: boolean;
  restoredRevision?: number;
}

/**
 * A message ahead of the schedule is put back (nak), OUT_OF_ORDER_RETRY_MS apart, for
 * twice the port's `ack_wait` before it is dead-lettered: time for a sender to be
 * detected dead, moved and to replay the message that should have come before it — and
 * for a message the server still holds as delivered to a consumer that a JetStream
 * leader change left behind, which comes back only after `ack_wait` (kill-nats-node:
 * the trainer's `fwd 47`, stored before `fwd 48` was even sent, came 30 s late, just
 * after 30 tries of 1 s had dead-lettered 48 — gone for good, and the run stalled).
 */
const outOfOrderTries = (ackWaitMs: number) => Math.ceil((2 * ackWaitMs) / OUT_OF_ORDER_RETRY_MS);
const OUT_OF_ORDER_RETRY_MS = 1000;
/** Further ahead than this, no genuine sender can be (the trainer's window bounds a pipeline's lead): junk, dead-lettered at once. */
const OUT_OF_ORDER_MAX_GAP = 64;

/** How long a finished VNode waits for the copies of its locally applied messages still on their way, and settles its queues. */
const LATE_COPY_WAIT_MS = 5000;

/**
 * Row count kept with every stash entry, so later inputs can be checked against it (the
 * entry's first array: [rows], or the whole shape while a forward's inputs are gathered).
 */
const rowsOf = (stash: Float32Array[] | undefined) => (stash ? stash[0][0] : undefined);

/**
 * A VNode's initial tensors from its type's `init` (none for a loss or a type without
 * one). The random stream depends on the seed, the VNode's index and type only — not the
 * deployment name: the same model and seed give the same weights under any name. A
 * federated replica uses its index in the model of one replica (`fed.base`): every
 * replica starts from the same parameters.
 */
function initialTensors(v: ResolvedVNode, seed: number): Tensors {
  if (v.def.role === 'loss' || v.def.role === 'aggregator' || !v.def.init) return {};
  const index = v.fed?.base ?? v.index;
  return v.def.init({ config: v.config, inFeatures: v.inFeatures, outFeatures: v.outFeatures, rng: createRng(`${seed}/init/${index}/${v.def.type}`) });
}

export class VNodeActor {
  readonly id: string;
  readonly #o: VNodeActorOptions;
  readonly #v: ResolvedVNode;
  readonly #deployment: string;
  #committed: Committed;
  #tensors: Tensors;
  #stash: Map<number, Float32Array[]>;
  /** Outputs handed to receivers in this process in memory only, until their checkpoints cover them (runtime/outbox.ts). */
  readonly #outbox: Outbox;
  #machine: Actor<typeof vnodeMachine>;
  #mailboxes = new Map<Port, Mailbox>();
  #stopping = false;
  readonly #policy: CheckpointPolicy;
  /** Inputs applied (or duplicates of them) since the last capture: acked by the next checkpoint. */
  #held: JsMsg[] = [];
  /** Sends since the last capture: the next checkpoint waits for them. */
  #sends: Promise<unknown>[] = [];
  /** The checkpoint commit in flight (one at most), and the messages it acks. */
  #inflight: { done: Promise<void>; acks: JsMsg[] } | null = null;
  #lastCapture = performance.now();
  #lastYield = performance.now();
  /** How long the last checkpoint commit took: the next comes no sooner than COMMIT_SHARE⁻¹ times that. */
  #lastCommitMs = 0;
  /** An error of a background send or commit: `run()` throws it. */
  #failure: unknown = null;
  #replay: Replay | null = null;
  /** Messages applied as handed over in memory, by message id, until their JetStream copies come (held then). */
  readonly #localCopies = new Map<string, { port: Port; kind: MessageKind; seq: number }>();
  #stopReceivingLocally: (() => void) | null = null;
  #stopWatchingPeers: (() => void) | null = null;
  /** Auth on (our connection has credentials): we sign what we send and check who sent what we get. */
  readonly #signer: Signer | undefined;
  /** Parameters after updates that are served versions, for the next checkpoint to store (docs/serving.md). */
  #versions: ParamsVersion[] = [];
  readonly #versionEvery: number;
  /** The VNode has parameters (only those keep versions). */
  readonly #versioned: boolean;
  /** The deployment keeps a ledger (spec `ledger`): what this VNode applies is recorded (runtime/ledger/recorder.ts). */
  readonly #ledger: LedgerRecorder | null;

  private constructor(
    o: VNodeActorOptions,
    committed: Committed,
    tensors: Tensors,
    stash: Map<number, Float32Array[]>,
    outbox: readonly OutboxEntry[],
    machine: Actor<typeof vnodeMachine>,
  ) {
    this.#o = o;
    this.#signer = signerOf(o.nc);
    this.#v = o.model.vnodes[o.index];
    this.#deployment = o.model.spec.name;
    this.id = vnodeId(this.#deployment, o.index, this.#v.def.type);
    this.#committed = committed;
    this.#tensors = tensors;
    this.#stash = stash;
    this.#outbox = new Outbox(outbox);
    this.#machine = machine;
    this.#policy = checkpointPolicy(o.model.spec);
    this.#versionEvery = o.model.spec.versionEvery ?? DEFAULT_VERSION_EVERY;
    this.#versioned = (this.#v.def.parameters ?? []).length > 0;
    this.#ledger = o.model.spec.ledger
      ? new LedgerRecorder(
          {
            deployment: this.#deployment,
            generation: o.generation,
            vnode: o.index,
            type: this.#v.def.type,
            epoch: o.epoch,
            pnode: o.pnode ?? 'local',
            kernels: o.kernels.mode,
            parameters: this.#v.def.parameters,
            evidence: evidenceOf(o.nc, o.js, this.#deployment, o.generation, chunkBytesFor(o.nc)),
            js: o.js,
            signer: this.#signer,
          },
          committed.meta.ledger,
        )
      : null;
  }

  /**
   * Bring a VNode to life under `epoch`: restore it from KV (or create its initial
   * state), fence any older owner by committing under the new epoch, and open its
   * mailboxes. Throws FencedError if a newer owner already holds it.
   */
  static async activate(o: VNodeActorOptions): Promise<VNodeActor> {
    const started = Date.now();
    const v = o.model.vnodes[o.index];
    const deployment = o.model.spec.name;
    /** Commit the activated state under our epoch (CAS on `prev`) and build the actor. */
    const commit = async (prev: Committed | null, tensors: Tensors, stash: Map<number, Float32Array[]>, machine: Actor<typeof vnodeMachine>, outbox: readonly OutboxEntry[] = [], ledger?: LedgerHead) => {
      const write = toStateWrite({ generation: o.generation, epoch: o.epoch, def: v.def, machine, tensors, stash, outbox });
      // The ledger's chain goes on from where the restored state's ends (runtime/ledger/recorder.ts).
      if (o.model.spec.ledger) write.ledger = ledger ?? { count: 0, head: null };
      const committed = await o.store.write(deployment, o.index, prev, write);
      return new VNodeActor(o, committed, tensors, stash, outbox, machine);
    };
    const checkpoint = checkpointPolicy(o.model.spec);
    const input = { role: v.def.role, depth: v.depth, checkpoint, arity: arityOf(v), ...(v.fed?.rounds ? { rounds: v.fed.rounds } : {}) };
    for (let attempt = 0; ; attempt++) {
      const stored = await o.store.read(deployment, o.index);
      if (stored && stored.meta.generation > o.generation) {
        throw new FencedError(`${deployment}.${o.index}`, `a newer deployment (${stored.meta.generation}) owns this name`);
      }
      // Epochs restart with each generation: only same-generation state is resumed.
      const found = stored && stored.meta.generation === o.generation ? stored : null;
      try {
        let actor: VNodeActor;
        if (!found) {
          const machine = createActor(vnodeMachine, { input }).start();
          machine.send({ type: 'ACTIVATED', epoch: o.epoch });
          // A federated aggregator starts from its layer's initial parameters (runtime/federated/rounds.ts).
          const made = v.fed?.layer ? aggregatorState(v, initialTensors(v.fed.layer, o.seed)) : initialTensors(v, o.seed);
          // Started from given parameters: ours replace the random ones (optimizer slots stay fresh).
          const given = o.init ? await loadInitialParameters(o.store, deployment, v, o.init, made) : made;
          // A federated replica's layer anchors its rounds at its starting parameters.
          const tensors = v.fed?.rounds && v.def.role === 'layer' ? withReplicaState(v, given) : given;
          const stash = new Map<number, Float32Array[]>();
          // CAS over an older generation's state (which it replaces), or create.
          actor = await commit(stored, tensors, stash, machine);
        } else {
          const { meta } = found;
          if (meta.epoch > o.epoch) throw new FencedError(`${deployment}.${o.index}`, `stored epoch ${meta.epoch} > ${o.epoch}`);
          if (meta.type !== v.def.type) {
            throw new Error(`${deployment}.${o.index}: stored state is of type ${meta.type}, the model says ${v.def.type}`);
          }
          // Newer state than this code: resuming it would misread its tensors (no downgrades).
          if (meta.typeVersion > v.def.version) {
            throw new Error(
              `${deployment}.${o.index}: stored state is ${v.def.type} version ${meta.typeVersion}, newer than this code's version ${v.def.version}; run code that knows version ${meta.typeVersion}`,
            );
          }
          const snapshot = parseMachineSnapshot(meta.snapshot);
          if (!snapshot.ok) throw new Error(`${deployment}.${o.index}: stored state cannot be resumed: ${snapshot.error}`);
          const { role, depth, arity = { inputs: 1, consumers: role === 'loss' ? 0 : 1 }, rounds } = snapshot.value.context;
          const want = v.fed?.rounds;
          if (rounds?.every !== want?.every || rounds?.replicas !== want?.replicas || rounds?.count !== want?.count) {
            throw new Error(`${deployment}.${o.index}: stored state has federated rounds ${JSON.stringify(rounds ?? null)}, the model says ${JSON.stringify(v.fed?.rounds ?? null)}`);
          }
          if (role !== input.role || depth !== input.depth || arity.inputs !== input.arity.inputs || arity.consumers !== input.arity.consumers) {
            throw new Error(
              `${deployment}.${o.index}: stored state is a ${role} of pipeline depth ${depth} with ${arity.inputs} input(s) and ${arity.consumers} consumer(s), ` +
                `the model says a ${input.role} of depth ${input.depth} with ${input.arity.inputs} and ${input.arity.consumers}`,
            );
          }
          let { tensors, stash, outbox } = await o.store.load(meta);
          if (meta.typeVersion < v.def.version) {
            if (!v.def.upgrade) throw new Error(`${v.def.type}: stored version ${meta.typeVersion} needs an upgrade() to ${v.def.version}`);
            tensors = v.def.upgrade(meta.typeVersion, tensors, v.config as never);
          }
          const machine = createActor(vnodeMachine, { snapshot: snapshot.value, input }).start();
          machine.send({ type: 'RESTORED', epoch: o.epoch, checkpoint });
          // The takeover write: after it, every write of an older owner fails its CAS.
          actor = await commit(found, tensors, stash, machine, outbox, meta.ledger);
        }
        await actor.#openMailboxes();
        // Announced once the backlog found in the mailbox is replayed (`run`), or now if there is none.
        const remaining = Object.fromEntries([...actor.#mailboxes].map(([port, m]) => [port, m.backlog])) as Record<Port, number>;
        actor.#replay = { remaining, taken: 0, applied: 0, startedAt: Date.now(), activationStartedAt: started, restored: !!found, ...(found ? { restoredRevision: found.revision } : {}) };
        if (Object.values(remaining).every((n) => n === 0)) actor.#endReplay();
        actor.#stopReceivingLocally = receiveLocally(o.nc, deployment, o.index, (m) => actor.#offered(m));
        actor.#stopWatchingPeers = watchLocalPeers(o.nc, deployment, {
          covering: (index, covered, commit) => actor.#outbox.covering(index, covered, commit),
          gone: (index) => void actor.#flushOutbox(index),
        });
        // What the restored checkpoint handed over in memory and its receivers' committed states do not hold: again.
        await actor.#trimOutboxFromStore();
        await actor.#flushOutbox();
        return actor;
      } catch (err) {
        // A concurrent writer between our read and our write: read again, unless we are outranked.
        if (err instanceof FencedError && attempt < 3) {
          const now = await o.store.read(deployment, o.index);
          if (!now || now.meta.generation < o.generation || (now.meta.generation === o.generation && now.meta.epoch <= o.epoch)) continue;
        }
        throw err;
      }
    }
  }

  /** The machine's context (schedule and counters). */
  get context() {
    return this.#machine.getSnapshot().context;
  }

  /** Current tensors (read-only view for tests and evaluation). */
  get tensors(): Readonly<Tensors> {
    return this.#tensors;
  }

  /** Messages in this VNode's ports not yet acked: not delivered, or delivered and not yet covered by a checkpoint (`num_pending` + `num_ack_pending`). */
  async pendingMessages(): Promise<number> {
    let n = 0;
    for (const m of this.#mailboxes.values()) n += await m.pending();
    return n;
  }

  /** The KV revision of its last committed checkpoint (after `run()` returned stopped: the one that covers all it applied). */
  get committedRevision(): number {
    return this.#committed.revision;
  }

  /** Ask `run()` to return after the message in hand. */
  stop(): void {
    this.#stopping = true;
  }

  /** The machine's state (for tests and tools; the host decides from it). */
  get state(): VNodeMachineSnapshot['value'] {
    return this.#machine.getSnapshot().value;
  }

  /** Send the machine an event and return the state it moved to. */
  #tell(event: VNodeMachineEvent): VNodeMachineSnapshot {
    this.#machine.send(event);
    return this.#machine.getSnapshot();
  }

  /** Process messages until the machine is done, the actor is fenced, passivated or stopped. */
  async run(): Promise<ActorExit> {
    try {
      return await this.#loop();
    } catch (caught) {
      let err = caught;
      // A consumer can vanish without a takeover (a JetStream leader change loses it, or
      // reports it missing for a moment): fenced only if a newer owner has committed,
      // which a takeover does before it replaces our consumers. Else the host restarts us.
      if (err instanceof MailboxTakenError && !(await this.#outranked())) {
        err = new Error(`${this.id}: ${err.message}, but no newer owner has committed: the consumer was lost (a JetStream leader change?); re-opening`);
      }
      if (err instanceof FencedError || err instanceof MailboxTakenError) {
        await this.#settled();
        this.#machine.send({ type: 'FENCED' });
        this.#o.onEvent?.({ type: 'fenced', vnode: this.id, epoch: this.#o.epoch, cause: err instanceof FencedError ? 'write' : 'mailbox' });
        return 'fenced';
      }
      // The in-memory state may be ahead of the checkpoint: the host restores from KV.
      await this.#settled();
      this.#machine.send({ type: 'FAILED', error: String(err) });
      throw err;
    } finally {
      this.#stopWatchingPeers?.();
      this.#stopReceivingLocally?.();
      await Promise.all([...this.#mailboxes.values()].map((m) => m.close()));
    }
  }

  /** Whether the stored state names a newer owner (a read that fails says no: the restart that follows re-checks). */
  async #outranked(): Promise<boolean> {
    const now = await this.#o.store.read(this.#deployment, this.#o.index).catch(() => null);
    if (!now) return false;
    return now.meta.generation > this.#o.generation || (now.meta.generation === this.#o.generation && now.meta.epoch > this.#o.epoch);
  }

  /**
   * A local offer: taken unless we are stopping (its sender keeps it in its outbox and
   * publishes it once we unregister), or replaying a backlog that holds its JetStream copy.
   */
  #offered(m: LocalMessage): void {
    if (this.#stopping || (m.copy && this.#replay)) return;
    this.#mailboxes.get(m.port)?.offer(m);
  }

  async #loop(): Promise<ActorExit> {
    let lastMessage = Date.now();
    while (!this.#stopping) {
      this.#throwIfFailed();
      const now = this.#machine.getSnapshot();
      if (now.matches('done')) {
        // The last message's checkpoint (always due) must be committed: completion is read from KV.
        await this.#checkpointCommitted();
        // Finished, but its receivers here may not yet have covered what it handed them.
        await this.#awaitOutboxCovered();
        await this.#settleQueues();
        this.#endReplay();
        this.#o.onEvent?.({ type: 'done', vnode: this.id });
        return 'done';
      }
      const want = awaitedInput(now);
      if (!want) throw new Error(`${this.id}: the machine awaits no input in state ${JSON.stringify(now.value)}`);
      // The replay ends where the schedule asks for a message that was not in the mailbox at activation.
      if (this.#replay && this.#replay.remaining[want.port] <= 0) this.#endReplay();
      const msg = await this.#mailboxes.get(want.port)!.next(Math.min(1000, this.#policy.ms), want.seq);
      // A checkpoint may have failed while we waited: nothing more is applied or acked on top of it.
      this.#throwIfFailed();
      if (!msg) {
        this.#endReplay(); // the backlog is not coming (a safety net: it was there at activation)
        await this.#tick(false);
        // Idle: leave memory (state is in KV once flushed); the host wakes us on the next message.
        if (!this.#stopping && this.#o.passivateAfterMs !== undefined && Date.now() - lastMessage >= this.#o.passivateAfterMs) {
          await this.#tick(true);
          await this.#checkpointCommitted();
          await this.#publishOutbox();
          if (this.#tell({ type: 'PASSIVATE' }).matches('passivated')) {
            this.#o.onEvent?.({ type: 'passivated', vnode: this.id });
            return 'passivated';
          }
        }
        continue;
      }
      if (this.#replay && !('local' in msg)) {
        this.#replay.remaining[want.port]--;
        this.#replay.taken++;
      }
      lastMessage = Date.now();
      if ('local' in msg) await this.#handleLocal(msg);
      else await this.#handle(want, msg);
      // Messages in memory follow one another without a wait: let timers and sockets run now and then.
      if (performance.now() - this.#lastYield > YIELD_EVERY_MS) {
        await new Promise((r) => setImmediate(r));
        this.#lastYield = performance.now();
      }
    }
    // Stopped (released, moved, shut down): checkpoint what is applied, so the next owner need not replay it.
    try {
      await this.#tick(true);
      await this.#checkpointCommitted();
      await this.#publishOutbox();
    } catch (err) {
      if (!(err instanceof FencedError)) throw err; // a newer owner has it already: nothing to save
    }
    this.#machine.send({ type: 'STOP' });
    return 'stopped';
  }

  /**
   * Done, its last checkpoint committed: settle what is still queued on its ports, so a
   * finished run leaves its mailbox as it would without local delivery. The JetStream
   * copies of locally applied messages are acked (the last checkpoint covers them), and
   * so are re-sends of what it holds: what its senders in this process published from
   * their outboxes as they finished or left (runtime/outbox.ts) — it waits, up to
   * LATE_COPY_WAIT_MS, until those senders have finished and its ports hold nothing.
   * Junk is rejected and dead-lettered as it would have been on the way: while messages
   * come in memory the loop reads a port's consumer only when it waits, so junk there can
   * outlast the run. A well-formed message it does not hold is left unacked for whoever
   * owns the VNode next, as before.
   */
  async #settleQueues(): Promise<void> {
    finishLocally(this.#o.nc, this.#deployment, this.#o.index);
    const deadline = Date.now() + LATE_COPY_WAIT_MS;
    while (Date.now() < deadline) {
      let took = false;
      for (const [port, mailbox] of this.#mailboxes) {
        const m = await mailbox.next(20);
        if (!m || 'local' in m) continue;
        took = true;
        await this.#settleLate(port, m);
      }
      if (took || this.#localCopies.size > 0 || peersWorking(this.#o.nc, this.#deployment, this.#o.index)) continue;
      if ((await this.pendingMessages().catch(() => 0)) === 0) return;
    }
  }

  /** One message taken after the end (`#settleQueues`); the machine, done, takes no more input. */
  async #settleLate(port: Port, raw: JsMsg): Promise<void> {
    if (this.#misdelivered(port, raw)) return;
    const id = raw.headers?.get(Header.MsgId);
    if (id && this.#localCopies.delete(id)) return raw.ack();
    const checked = validateMessage(raw.headers, raw.data, { deployment: this.#deployment, index: this.#o.index, port, checkShape: this.#checkShape });
    if (!checked.ok) return this.#reject(raw, checked.error);
    const forged = await this.#forged(raw, checked.msg);
    if (forged) return this.#reject(raw, forged);
    // A re-send of what the last checkpoint (committed) holds: a sender's outbox published as it left.
    if (covers(this.context.schedule, checked.msg.kind, checked.msg.seq, port)) raw.ack();
  }

  #throwIfFailed(): void {
    if (this.#failure !== null) throw this.#failure;
  }

  /** Let the machine decide whether a checkpoint is due now (`flush`: whatever is applied). */
  async #tick(flush: boolean): Promise<void> {
    const sinceCheckpointMs = performance.now() - this.#lastCapture;
    if (this.#tell({ type: 'TICK', sinceCheckpointMs, minGapMs: this.#minGapMs(), flush }).matches('checkpointing')) await this.#capture();
  }

  #minGapMs(): number {
    return Math.min(this.#lastCommitMs * (1 / COMMIT_SHARE - 1), MAX_GAP_INTERVALS * this.#policy.ms);
  }

  /** Wait until the last captured checkpoint is committed; throws what went wrong in the background. */
  async #checkpointCommitted(): Promise<void> {
    await this.#inflight?.done;
    this.#throwIfFailed();
  }

  /** Wait for background work to end, ignoring its outcome (we are failing or fenced anyway). */
  async #settled(): Promise<void> {
    await Promise.allSettled([this.#inflight?.done, ...this.#sends]);
  }

  /** Announce the activation once (see `ActorEvent`): at the end of the replay. */
  #endReplay(): void {
    const r = this.#replay;
    if (!r) return;
    this.#replay = null;
    const now = Date.now();
    this.#o.onEvent?.({
      type: 'activated',
      vnode: this.id,
      epoch: this.#o.epoch,
      restored: r.restored,
      ...(r.restoredRevision !== undefined ? { restoredRevision: r.restoredRevision } : {}),
      ms: now - r.activationStartedAt,
      replayed: r.applied,
      replayMs: r.taken === 0 ? 0 : now - r.startedAt,
    });
  }

  /**
   * Take this state (the machine is in `checkpointing`) as a checkpoint and commit it in
   * the background: after the sends it covers, CAS after the previous commit (one in
   * flight at most: a second one waits), then ack what it covers.
   */
  async #capture(traceparent?: string): Promise<void> {
    const outbox = this.#outbox.snapshot();
    const write = toStateWrite({ generation: this.#o.generation, epoch: this.#o.epoch, def: this.#v.def, machine: this.#machine, tensors: this.#tensors, stash: this.#stash, outbox: outbox.entries });
    // The last update is a served version too (the parameters a finished run ends with).
    const { applied } = this.context;
    if (this.#versioned && applied > 0 && this.#versions.at(-1)?.step !== applied && applied % this.#versionEvery !== 0 && nextInput(this.context.role, this.context.schedule, this.context.depth, this.context.rounds) === null) {
      this.#versions.push({ step: applied, tensors: this.#tensors });
    }
    write.versions = this.#versions;
    this.#versions = [];
    // What it applied since the last checkpoint, as a ledger entry, stored before the meta that names it.
    const sealed = this.#ledger?.seal() ?? null;
    if (this.#ledger) write.ledger = this.#ledger.head;
    const covered = this.context.schedule;
    this.#tell({ type: 'CAPTURED' });
    const acks = this.#held;
    const sends = this.#sends;
    this.#held = [];
    this.#sends = [];
    this.#lastCapture = performance.now();
    if (this.#inflight) {
      const t = performance.now();
      await this.#inflight.done;
      durabilityWaits.checkpointMs += performance.now() - t;
    }
    this.#throwIfFailed();
    // Our senders in this process leave out of their checkpoints what this one holds, and wait for its commit (runtime/outbox.ts).
    let committed!: { resolve: () => void; reject: (err: unknown) => void };
    const commit = new Promise<void>((resolve, reject) => (committed = { resolve, reject }));
    commit.catch(() => {});
    announceCovering(this.#o.nc, this.#deployment, this.#o.index, covered, commit);
    const span = startSpan('vnode checkpoint', traceparent, () => ({ ...this.#spanAttributes(), 'dcnr.messages': acks.length }));
    const done = (async () => {
      const t0 = performance.now();
      const before = this.#o.store.bytesWritten;
      try {
        // Outputs durable first: a committed checkpoint never covers an input whose outputs
        // could be lost — stored downstream, in our outbox, or in a receiver's commit we wait for.
        await Promise.all(sends);
        await Promise.all(outbox.after);
        if (sealed) await this.#ledger!.store(sealed);
        this.#committed = await this.#o.store.write(this.#deployment, this.#o.index, this.#committed, write);
      } catch (err) {
        if (err instanceof FencedError) telemetryMetrics().fencedWrites.add(1);
        this.#failure ??= err;
        committed.reject(err);
        span.end(err);
        return;
      }
      committed.resolve();
      span.end();
      const ms = performance.now() - t0;
      this.#lastCommitMs = ms;
      telemetryMetrics().persistMs.record(ms);
      // Acked only once a committed checkpoint holds their effect (invariant 2).
      for (const m of acks) m.ack();
      this.#o.onEvent?.({ type: 'checkpointed', vnode: this.id, messages: acks.length, bytes: this.#o.store.bytesWritten - before, ms });
    })();
    this.#inflight = { done, acks };
    void done.finally(() => {
      if (this.#inflight?.done === done) this.#inflight = null;
    });
  }

  /** Send without waiting; the next checkpoint waits for it. A failure stops the actor. */
  async #send(p: Promise<unknown>): Promise<void> {
    p.catch((err) => {
      this.#failure ??= err;
    });
    this.#sends.push(p);
    if (this.#sends.length >= SENDS_IN_FLIGHT) {
      const t = performance.now();
      await Promise.allSettled(this.#sends.splice(0, SENDS_IN_FLIGHT / 2));
      durabilityWaits.sendsMs += performance.now() - t;
    }
  }

  async #openMailboxes() {
    const v = this.#v;
    const ports: Port[] =
      v.def.role === 'aggregator'
        ? v.inputs.map((_, slot) => deltaPort(slot))
        : [
            ...v.inputs.map((_, slot) => fwdPort(slot)),
            ...(v.def.role === 'loss' ? ['target' as const] : v.consumers.map((_, slot) => bwdPort(slot))),
            ...(v.fed?.rounds ? ['sync' as const] : []),
          ];
    const limits = mailboxLimits(this.#policy);
    for (const port of ports) {
      this.#mailboxes.set(port, await Mailbox.open(this.#o.js, this.#o.jsm, this.#deployment, this.#o.index, port, this.#o.epoch, limits));
    }
  }

  /** Shape rules of this VNode's ports (first line of defence; row counts are checked against the stash). */
  #checkShape = (port: Port, shape: number[]): string | null => {
    const v = this.#v;
    const dir = parsePort(port)?.dir;
    // Federated updates: a bytes frame, decoded and checked before it is applied (`#checkAgainstState`).
    if (dir === 'delta' || dir === 'sync') return shape.length === 1 ? null : `${port} frame of ${this.id} must be [words], got [${shape}]`;
    // Targets: one-hot rows [rows, classes], or a window's next-token ids [rows, time] (text).
    if (dir === 'target') {
      const cols = this.#o.model.targetFeatures;
      return shape.length === 2 && shape[1] === cols ? null : `target tensor of ${this.id} must be [rows, ${cols}], got [${shape}]`;
    }
    // Activations and gradients: [rows, features] or [rows, time, features] (a sequence).
    const cols = dir === 'bwd' ? v.outFeatures : v.inFeatures;
    if (shape.length < 2 || shape.length > 3 || shape[shape.length - 1] !== cols) {
      return `${port} tensor of ${this.id} must be [rows, ${cols}] or [rows, time, ${cols}], got [${shape}]`;
    }
    return null;
  };

  /**
   * A delivery on another subject than the port's, which its consumer filters on: the
   * server's mistake, not anyone's input. Dead-lettering (acking) it would delete, from
   * the work queue, a message that belongs to another VNode's mailbox; so it is left
   * unacked and reported.
   */
  #misdelivered(port: Port, raw: JsMsg): boolean {
    if (raw.subject === Subject.mailbox(this.#deployment, this.#o.index, port)) return false;
    this.#o.onEvent?.({ type: 'misdelivered', vnode: this.id, port, subject: raw.subject });
    return true;
  }

  /** A message delivered by the port's consumer (its JetStream copy). */
  async #handle(want: { port: Port; seq: number }, raw: JsMsg): Promise<void> {
    await this.#injectedDelay();
    if (this.#misdelivered(want.port, raw)) return;
    const msgId = raw.headers?.get(Header.MsgId);
    const copy = msgId ? this.#localCopies.get(msgId) : undefined;
    if (copy) {
      // The copy of a message applied as handed over in memory: a duplicate now, held
      // until a checkpoint covers it like any other (no need to check bytes we made).
      this.#localCopies.delete(msgId!);
      const verdict = this.#tell({ type: 'MESSAGE', ...copy, fits: true });
      if (!verdict.matches('skipping')) throw new Error(`${this.id}: the copy of ${copy.kind} seq ${copy.seq}, applied locally, was not taken as a duplicate`);
      return this.#skip(verdict, copy, raw);
    }
    const checked = validateMessage(raw.headers, raw.data, {
      deployment: this.#deployment,
      index: this.#o.index,
      port: want.port,
      checkShape: this.#checkShape,
    });
    if (!checked.ok) {
      startSpan('vnode reject', raw.headers?.get(Header.TraceParent) || undefined, () => this.#spanAttributes()).end(checked.error);
      this.#expect(this.#tell({ type: 'INVALID' }), 'rejecting');
      return this.#reject(raw, checked.error);
    }
    const m = checked.msg;
    const forged = await this.#forged(raw, m);
    if (forged) {
      this.#expect(this.#tell({ type: 'INVALID' }), 'rejecting');
      return this.#reject(raw, forged);
    }
    // A fact about our state the machine weighs only if this is the awaited message.
    const mismatch = this.#checkAgainstState(m);
    const verdict = this.#tell({ type: 'MESSAGE', port: m.port, kind: m.kind, seq: m.seq, fits: mismatch === null });
    if (verdict.matches('skipping')) return this.#skip(verdict, m, raw);
    if (verdict.matches({ rejecting: 'outOfOrder' })) {
      // A gap before it: a send lost in a NATS failover while this later one was stored.
      // The sender's replay fills the gap; dead-lettering this one would lose it for good
      // (its re-send is dropped as a duplicate of its message id). So it is put back, and
      // dead-lettered only if the gap stays open through every retry.
      const tries = outOfOrderTries(mailboxLimits(this.#policy).ackWaitMs);
      if (m.seq - want.seq <= OUT_OF_ORDER_MAX_GAP && (raw.info?.deliveryCount ?? 1) < tries) {
        raw.nak(OUT_OF_ORDER_RETRY_MS);
        this.#tell({ type: 'ACKED' });
        return;
      }
      return this.#reject(raw, `out of order: ${this.id} expects seq ${want.seq} on its ${want.port} port next, got ${m.seq} (${tries} deliveries)`);
    }
    if (verdict.matches({ rejecting: 'wrongPort' })) {
      return this.#reject(raw, `wrong port: ${this.id} waits on its ${want.port} port, got a ${m.kind} message from the ${m.port} port`);
    }
    if (verdict.matches({ rejecting: 'doesNotFit' })) return this.#reject(raw, mismatch ?? `${m.kind} seq ${m.seq} does not fit ${this.id}'s state`);
    this.#expect(verdict, 'processing');
    await this.#apply(m, raw);
  }

  /** With auth on: why `m` was not sent by whom it must come from (runtime/security/verifier.ts), or null. */
  async #forged(raw: JsMsg, m: InboundMessage): Promise<string | null> {
    if (!this.#signer) return null;
    const shape = raw.headers?.get(Header.Shape) ?? '';
    const check = await senderCheckOf(this.#o.nc);
    return check.message(raw.headers, raw.data, { deployment: this.#deployment, to: this.#o.index, kind: m.kind, seq: m.seq, epoch: m.epoch, from: m.from, shape }, this.#o.trainerKey, this.#o.generation, expectedSender(m.port, this.#v));
  }

  /**
   * A message a sender in this process handed over in memory (runtime/local-delivery.ts):
   * the awaited one (the mailbox gives no other), applied without waiting for its copy.
   */
  async #handleLocal(lm: LocalMessage): Promise<void> {
    await this.#injectedDelay();
    const m: InboundMessage = { kind: lm.kind, port: lm.port, seq: lm.seq, epoch: lm.epoch, from: lm.from, traceparent: lm.traceparent, tensor: lm.tensor };
    const mismatch = this.#checkAgainstState(m);
    const verdict = this.#tell({ type: 'MESSAGE', port: m.port, kind: m.kind, seq: m.seq, fits: mismatch === null });
    // Not applicable here (a bug upstream if ever): drop it; its copy comes through the
    // mailbox and is judged — and dead-lettered with the reason — like any message.
    if (verdict.matches('skipping')) return void this.#tell({ type: 'SKIPPED' });
    if (verdict.matches('rejecting')) return void this.#tell({ type: 'ACKED' });
    this.#expect(verdict, 'processing');
    if (lm.copy) this.#localCopies.set(lm.msgId, { port: m.port, kind: m.kind, seq: m.seq });
    await this.#apply(m, null);
  }

  async #injectedDelay(): Promise<void> {
    const delay = this.#o.messageDelayMs?.() ?? 0;
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
  }

  /** A duplicate: announce it, and ack it with the checkpoint that covers it (now, if one does). */
  #skip(verdict: VNodeMachineSnapshot, m: { port: Port; seq: number; traceparent?: string }, raw: JsMsg): void {
    startSpan('vnode replay', m.traceparent, () => ({ ...this.#spanAttributes(), 'dcnr.seq': m.seq })).end();
    this.#o.onEvent?.({ type: 'duplicate', vnode: this.id, port: m.port, seq: m.seq });
    if (verdict.matches({ skipping: 'covered' })) {
      // Covered by the last captured checkpoint: acked with it (now, if it is committed).
      // No commit in flight means it committed — or failed: then never ack (the restart
      // restores the checkpoint before it, and this message must still be there).
      if (this.#inflight) this.#inflight.acks.push(raw);
      else if (this.#failure === null) raw.ack();
    } else {
      // Applied since that checkpoint (a redelivery, or the copy of a local message): held like the message it repeats, never acked early.
      this.#held.push(raw);
    }
    this.#tell({ type: 'SKIPPED' });
  }

  /** Apply the awaited message (the machine is in `processing`); `raw` is its JetStream copy, held for the checkpoint, or null if it came in memory. */
  async #apply(m: InboundMessage, raw: JsMsg | null): Promise<void> {
    const attributes = () => ({ ...this.#spanAttributes(), 'dcnr.kind': m.kind, 'dcnr.seq': m.seq });
    const span = startSpan(`vnode ${m.kind}`, m.traceparent, attributes);
    const meters = telemetryMetrics();
    try {
      const t0 = performance.now();
      const before: StepState = { tensors: this.#tensors, stash: this.#stash, applied: this.context.applied };
      const r = await this.#compute(m);
      const computeMs = performance.now() - t0;
      meters.computeMs.record(computeMs, KIND_ATTRIBUTES[m.kind]);
      this.#ledger?.record(m, before, r, computeMs);
      const outputs = r.outputs;
      this.#expect(this.#tell({ type: 'COMPUTED' }), 'publishing');

      // Outputs go out before the checkpoint that covers this message: if we die in
      // between, the replay sends the same bytes under the same message ids, and they
      // are dropped as duplicates.
      for (const out of outputs) await this.#output(out, out.seq ?? m.seq, span.traceparent ?? m.traceparent);
      if (raw) this.#held.push(raw);
      const published = { type: 'PUBLISHED', sinceCheckpointMs: performance.now() - this.#lastCapture, minGapMs: this.#minGapMs() } as const;
      if (this.#tell(published).matches('checkpointing')) await this.#capture(span.traceparent);
      meters.messages.add(1, KIND_ATTRIBUTES[m.kind]);
      span.end();
    } catch (err) {
      span.end(err);
      throw err;
    }
    if (this.#replay) this.#replay.applied++;
    this.#o.onEvent?.({ type: 'applied', vnode: this.id, kind: m.kind, seq: m.seq });
  }

  /** The machine must be in `state` now: anything else is a bug between host and machine. */
  #expect(snapshot: VNodeMachineSnapshot, state: 'rejecting' | 'processing' | 'publishing'): void {
    if (!snapshot.matches(state)) throw new Error(`${this.id}: the machine is in ${JSON.stringify(snapshot.value)}, the host expected ${state}`);
  }

  #spanAttributes() {
    return { 'dcnr.vnode': this.id, 'dcnr.deployment': this.#deployment, 'dcnr.epoch': this.#o.epoch, 'dcnr.pnode': this.#o.pnode ?? 'local' };
  }

  /**
   * Checks that need this VNode's state: a backward or target must match its forward's
   * rows; a forward's later inputs (a merge's) must have the shape of its first.
   */
  #checkAgainstState(m: InboundMessage): string | null {
    if (m.kind === 'delta' || m.kind === 'sync') {
      // A frame that cannot be applied is refused here, never thrown in the step (runtime/federated/rounds.ts).
      const problem = roundInputProblem(this.#v, { tensors: this.#tensors, stash: this.#stash }, m.kind, m.seq, parsePort(m.port)?.slot ?? 0, m.tensor!);
      return problem && `${m.kind} round ${m.seq} for ${this.id} on its ${m.port} port: ${problem}`;
    }
    if (m.kind === 'fwd') {
      const slot = parsePort(m.port)?.slot ?? 0;
      if (slot === 0) return null;
      const gathered = this.#stash.get(m.seq)?.[0];
      if (!gathered) return `${this.id} has no earlier input of forward seq ${m.seq}`;
      const shape = m.tensor!.shape;
      if (gathered.length !== shape.length || shape.some((d, i) => d !== gathered[i])) {
        return `fwd seq ${m.seq} on port ${m.port} has shape [${shape}], its first input had [${[...gathered]}]`;
      }
      return null;
    }
    if (m.kind !== 'bwd' && m.kind !== 'target') return null;
    const rows = rowsOf(this.#stash.get(m.seq));
    if (rows === undefined) return `${this.id} has no forward state for seq ${m.seq}`;
    if (m.tensor!.shape[0] !== rows) {
      return `${m.kind} seq ${m.seq} has ${m.tensor!.shape[0]} rows, its forward had ${rows}`;
    }
    return null;
  }

  /** The effect of one message (runtime/vnode-step.ts); the new state replaces ours. */
  async #compute(m: InboundMessage): Promise<StepResult> {
    const r = await applyStep(this.#v, this.#o.kernels, { tensors: this.#tensors, stash: this.#stash, applied: this.context.applied }, m, this.id);
    this.#tensors = r.tensors;
    this.#stash = r.stash;
    if (r.loss) await this.#send(this.#publishMetric({ seq: m.seq, loss: r.loss.value, batch: r.loss.rows, vnode: this.id }));
    // A federated layer's round ends in its sync: the version of that step is the synchronised parameters.
    const roundEnd = this.#v.def.role === 'layer' && this.#v.fed?.rounds && r.update !== undefined && r.update % this.#v.fed.rounds.every === 0;
    if (r.update !== undefined && !roundEnd) this.#keepVersion(r.update);
    if (m.kind === 'sync') this.#keepVersion(this.context.applied);
    const lie = this.#o.corruptGradients?.() ?? 1;
    if (lie !== 1) r.outputs = r.outputs.map((o) => (o.kind === 'bwd' && o.tensor ? { ...o, tensor: { shape: o.tensor.shape, data: o.tensor.data.map((x) => x * lie) } } : o));
    return r;
  }

  /** After update `step`: keep the parameters if it is a served version (a replayed update keeps it again, alike). */
  #keepVersion(step: number): void {
    if (this.#versioned && step % this.#versionEvery === 0) this.#versions.push({ step, tensors: this.#tensors });
  }

  #envelope(o: Output, seq: number, traceparent: string | undefined): Envelope {
    return { deployment: this.#deployment, to: o.to, kind: o.kind, port: o.port, seq, epoch: this.#o.epoch, from: this.id, tensor: o.tensor, traceparent };
  }

  /**
   * Send one output: in memory only to a receiver in this process, kept in the outbox
   * until its checkpoint covers it; else published to its mailbox without waiting (the
   * next checkpoint waits for it).
   */
  async #output(o: Output, seq: number, traceparent: string | undefined): Promise<void> {
    const e = this.#envelope(o, seq, traceparent);
    if (handOver(this.#o.nc, e)) this.#outbox.add({ to: o.to, kind: o.kind, port: o.port, seq, tensor: o.tensor });
    else await this.#send(sendMessage(this.#o.nc, e, this.#signer));
  }

  /**
   * Send again what the outbox holds (for VNode `to`, or all): the receiver left this
   * process, or we were restored. Each entry goes out as a new output would: to a
   * receiver here in memory (kept), else to its mailbox (the next checkpoint waits for
   * it; the checkpoint before still holds the entry).
   */
  async #flushOutbox(to?: number): Promise<void> {
    for (const e of this.#outbox.take(to)) await this.#output({ ...e, port: portOf(e) }, e.seq, undefined);
  }

  /**
   * Forget the outbox entries its receivers' committed checkpoints hold (read from KV),
   * so a restored VNode re-sends only what is missing. A record that cannot be read or
   * parsed trims nothing: re-sending what a receiver holds costs only a duplicate.
   */
  async #trimOutboxFromStore(): Promise<void> {
    for (const to of this.#outbox.receivers()) {
      const stored = await this.#o.store.read(this.#deployment, to).catch(() => null);
      if (!stored || stored.meta.generation !== this.#o.generation) continue;
      const progress = readProgress(stored.meta);
      if (progress.ok) this.#outbox.trim(to, progress.value.schedule);
    }
  }

  /**
   * Finished: wait until the receivers here cover what it handed them (their own last
   * checkpoints do, shortly: none of them waits for us), or leave — then their entries
   * go to their mailboxes (`gone`). Past LATE_COPY_WAIT_MS the rest is published: a
   * finished VNode re-sends nothing, so a receiver that fails later must find them there.
   */
  async #awaitOutboxCovered(): Promise<void> {
    const deadline = Date.now() + LATE_COPY_WAIT_MS;
    while (this.#outbox.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await this.#publishOutbox();
  }

  /**
   * Publish every entry to its receiver's mailbox, whether the receiver is here or not:
   * we are leaving this process (stopped, passivated, finished), and re-send nothing after — a receiver here that fails before it covers them must
   * find them there. Returns once they, and every send before them, are stored.
   */
  async #publishOutbox(): Promise<void> {
    for (const e of this.#outbox.take()) await this.#send(sendMessage(this.#o.nc, this.#envelope({ ...e, port: portOf(e) }, e.seq, undefined), this.#signer));
    await Promise.all(this.#sends.splice(0));
  }

  #publishMetric(metric: StepMetric) {
    const h = headers();
    // One record per step and loss VNode: a federated deployment has a loss per replica.
    const replica = this.#v.fed?.replica ? `.r${this.#v.fed.replica}` : '';
    h.set(Header.JetStreamMsgId, `${this.#deployment}.metric.${metric.seq}${replica}`);
    return publishAcked(this.#o.nc, Subject.metrics(this.#deployment), JSON.stringify(metric), h);
  }

  /** Dead-letter, announce and count a bad message, then ack it so it is not redelivered. */
  async #reject(raw: JsMsg, error: string): Promise<void> {
    const h = headers();
    for (const [k, vals] of raw.headers ?? []) for (const val of vals) h.append(k, val);
    h.set(Header.Error, error);
    h.set(Header.OriginalSubject, raw.subject);
    h.set(Header.RejectedIn, String(this.#o.generation));
    const dlq = Subject.deadLetter(this.#deployment);
    try {
      await this.#o.js.publish(dlq, raw.data, { headers: h });
    } catch {
      // Too big to keep with its headers: keep the evidence without the payload.
      h.set(Header.Error, `${error} (payload of ${raw.data.byteLength} bytes not kept)`);
      await this.#o.js.publish(dlq, new Uint8Array(0), { headers: h });
    }
    const notice: RejectionNotice = { subject: raw.subject, vnode: this.id, error, at: new Date().toISOString() };
    this.#o.nc.publish(Subject.errors(this.#deployment), JSON.stringify(notice));
    telemetryMetrics().rejected.add(1);
    this.#o.onEvent?.({ type: 'rejected', vnode: this.id, subject: raw.subject, error });
    raw.ack();
    this.#tell({ type: 'ACKED' });
  }
}
