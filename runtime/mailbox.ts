/**
 * Durable mailboxes: one JetStream work-queue stream per deployment, one durable
 * pull consumer per (VNode, port), streamed: the port's consumer keeps a prefetch
 * window of messages in this process (no request round trip per message), and the
 * actor takes them one at a time in the order its schedule asks for. A message a
 * sender in this process handed over in memory (`offer`) is taken in place of waiting
 * for its copy when it is the one the schedule asks for.
 *
 * A message is acked only once a committed checkpoint holds its effect, so a crash
 * redelivers it (and the VNode's watermark de-duplicates it, or it is replayed from
 * the checkpoint). `ack_wait` and `max_ack_pending` are sized from the checkpoint
 * interval (`mailboxLimits`): a VNode holds up to a checkpoint's worth of unacked
 * messages per port, plus what is in flight. Activating a VNode deletes and
 * re-creates its consumers: delivery restarts at the oldest unacked message at once
 * (no ack-wait delay after a crash), and a fenced old owner's stream dies with the
 * old consumer.
 */
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type Consumer,
  type JetStreamManager,
  type JsMsg,
  type ConsumerMessages,
} from '@nats-io/jetstream';
import type { LocalMessage } from './local-delivery.js';
import { Header, Stream, Subject, type Port } from './protocol.js';
import { replicas } from './replicas.js';

const NANOS = 1_000_000;

async function ensureStream(jsm: JetStreamManager, config: Parameters<JetStreamManager['streams']['add']>[0]) {
  try {
    await jsm.streams.info(config.name!);
  } catch {
    try {
      await jsm.streams.add({ ...config, num_replicas: replicas() });
    } catch (err) {
      // Another process may have created it in between.
      if (!/already in use|exists/i.test(String(err))) throw err;
    }
  }
}

/** Create (if missing) the mailbox and metrics streams of a deployment, and the dead-letter stream. */
export async function ensureDeploymentStreams(jsm: JetStreamManager, deployment: string): Promise<void> {
  await ensureStream(jsm, {
    name: Stream.mailbox(deployment),
    subjects: [Subject.mailboxAll(deployment)],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    // No Nats-Msg-Id on mailbox messages (see Header.MsgId): re-sent outputs are stored
    // and dropped by the receiver's watermark; the window is left at its default.
  });
  await ensureStream(jsm, {
    name: Stream.metrics(deployment),
    subjects: [Subject.metrics(deployment)],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    duplicate_window: 120_000 * NANOS,
  });
  await ensureStream(jsm, {
    name: Stream.deadLetter,
    subjects: [Subject.deadLetterAll],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_bytes: 512 * 1024 * 1024,
    discard: DiscardPolicy.Old,
  });
  // The ledger (runtime/ledger/): kept for the run, like the metrics. Its evidence is
  // content-addressed (one message per subject) and bounded: past the bound the oldest
  // goes, and the verifier reports what it can no longer re-execute (docs/ledger.md).
  await ensureStream(jsm, {
    name: Stream.ledger(deployment),
    subjects: [Subject.ledgerAll(deployment)],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
  });
  await ensureStream(jsm, {
    name: Stream.evidence(deployment),
    subjects: [Subject.evidenceAll(deployment)],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_msgs_per_subject: 1,
    max_bytes: EVIDENCE_MAX_BYTES,
    discard: DiscardPolicy.Old,
  });
}

/** Evidence kept per deployment, at most (runtime/ledger/evidence.ts). */
export const EVIDENCE_MAX_BYTES = 4 * 1024 * 1024 * 1024;

/** Delete a deployment's mailboxes, metrics and ledger (a fresh run). */
export async function removeDeploymentStreams(jsm: JetStreamManager, deployment: string): Promise<void> {
  for (const name of [Stream.mailbox(deployment), Stream.metrics(deployment), Stream.ledger(deployment), Stream.evidence(deployment)]) {
    await jsm.streams.delete(name).catch(() => {});
  }
}

/** Consumers are named per owner epoch, so a fenced owner can never pull from its successor's consumer. */
export const consumerName = (deployment: string, index: number, port: Port, epoch: number) => `${consumerPrefix(deployment, index, port)}${epoch}`;
/** What the names of a port's consumers, of every epoch, start with. */
export const consumerPrefix = (deployment: string, index: number, port: Port) => `${deployment}_${index}_${port}_e`;

/** Thrown by `next()` when the consumer is gone: a newer owner re-created the mailbox. */
export class MailboxTakenError extends Error {
  constructor(name: string) {
    super(`mailbox consumer ${name} was deleted: a newer owner took this VNode`);
    this.name = 'MailboxTakenError';
  }
}

/** How a port's consumer is sized. */
export interface MailboxLimits {
  /** Messages delivered and not acked, at most: the server stops delivering past it. */
  maxAckPending: number;
  /** Redeliver a message unacked this long (a held one comes back as a duplicate and is held again). */
  ackWaitMs: number;
  /** Messages this process asks for ahead of use. */
  prefetch: number;
}

/**
 * Limits for a checkpoint policy. A port holds at most `every` applied messages before
 * a checkpoint acks them, plus a prefetch window, plus what was redelivered: 2× that
 * leaves room. `ack_wait` is well past the longest a message waits for its checkpoint
 * (`ms`, plus a slow step and the commit itself).
 */
export function mailboxLimits(policy: { every: number; ms: number }): MailboxLimits {
  const prefetch = 64;
  return { prefetch, maxAckPending: 2 * (policy.every + prefetch) + 64, ackWaitMs: Math.max(30_000, 10 * policy.ms) };
}

/** How long opening a port retries a server that still holds an earlier owner's consumer. */
const OPEN_RETRY_MS = 30_000;

/** Delete every consumer of `subject` (earlier owners', or this epoch's from an earlier try), found by filter subject. */
async function removeConsumersOf(jsm: JetStreamManager, stream: string, subject: string): Promise<void> {
  for await (const info of jsm.consumers.list(stream)) {
    const filters = [info.config.filter_subject, ...(info.config.filter_subjects ?? [])];
    if (!filters.includes(subject)) continue;
    try {
      await jsm.consumers.delete(stream, info.name);
    } catch (err) {
      if (!/consumer not found|10014/i.test(String((err as Error)?.message ?? err))) throw err;
    }
  }
}

/** Errors of a cluster in transition (leader change, old consumer not yet gone): worth another try. */
function retryableOpenError(err: unknown): boolean {
  return /not unique|10100|timeout|no responders|503|temporarily unavailable/i.test(String((err as Error)?.message ?? err));
}

/** The seq a delivered message claims (NaN if none: junk is validated by the actor). */
const seqOf = (m: JsMsg): number => Number(m.headers?.get(Header.Seq) ?? NaN);

/** One port of one VNode's mailbox. */
export class Mailbox {
  readonly #queue: JsMsg[] = [];
  /** Messages handed over in memory, by seq, until taken or superseded. */
  readonly #local = new Map<number, LocalMessage>();
  #wake: (() => void) | null = null;
  #taken = false;
  #closed = false;
  #error: unknown = null;

  private constructor(
    private readonly consumer: Consumer,
    private readonly messages: ConsumerMessages,
    readonly name: string,
    /** Messages in the port when it was opened (what a restored VNode replays first). */
    readonly backlog: number,
  ) {
    void this.#pump();
    void this.#watch();
  }

  /** Re-create the port's consumer under `epoch` (see the module comment) and start streaming it. */
  static async open(
    js: JetStreamClient,
    jsm: JetStreamManager,
    deployment: string,
    index: number,
    port: Port,
    epoch: number,
    limits: MailboxLimits = mailboxLimits({ every: 1, ms: 1000 }),
  ): Promise<Mailbox> {
    const stream = Stream.mailbox(deployment);
    const name = consumerName(deployment, index, port, epoch);
    const subject = Subject.mailbox(deployment, index, port);
    const config = {
      durable_name: name,
      filter_subject: subject,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: limits.ackWaitMs * NANOS,
      max_ack_pending: limits.maxAckPending,
      max_deliver: -1,
    };
    // A work-queue stream allows one consumer per subject: remove every earlier owner's,
    // and retry while the server still holds one. Right after a JetStream leader change
    // a list can miss a consumer, or its delete can time out; the add then fails with
    // "filtered consumer not unique" (10100) until the old one is really gone.
    const deadline = Date.now() + OPEN_RETRY_MS;
    let info;
    for (let attempt = 0; ; attempt++) {
      try {
        await removeConsumersOf(jsm, stream, subject);
        info = await jsm.consumers.add(stream, config);
        break;
      } catch (err) {
        if (!retryableOpenError(err) || Date.now() >= deadline) throw err;
        await new Promise((r) => setTimeout(r, Math.min(2_000, 100 * 2 ** attempt)));
      }
    }
    const consumer = await js.consumers.get(stream, name);
    const messages = await consumer.consume({ max_messages: limits.prefetch, abort_on_missing_resource: true });
    return new Mailbox(consumer, messages, name, info.num_pending);
  }

  async #pump(): Promise<void> {
    try {
      for await (const m of this.messages) {
        this.#queue.push(m);
        this.#wake?.();
      }
    } catch (err) {
      this.#error = err;
    }
    // The stream ended: closed by us, or the consumer is gone.
    if (!this.#closed) this.#taken = true;
    this.#wake?.();
  }

  async #watch(): Promise<void> {
    for await (const s of this.messages.status()) {
      if (s.type === 'consumer_deleted' || s.type === 'consumer_not_found') {
        this.#taken = true;
        this.#wake?.();
      }
    }
  }

  /**
   * The next message, or null if none came within `timeoutMs`.
   * @throws MailboxTakenError when a newer owner has replaced the consumer.
   */
  async next(timeoutMs = 1000, awaitedSeq?: number): Promise<JsMsg | LocalMessage | null> {
    let m = this.#take(awaitedSeq);
    if (m) return m;
    if (!this.#taken) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, timeoutMs);
      });
      clearTimeout(timer);
      this.#wake = null;
      m = this.#take(awaitedSeq);
      if (m) return m;
    }
    if (this.#taken) {
      if (this.#error && !/consumer (not found|deleted)|no responders|consumer is closed/i.test(String((this.#error as Error)?.message ?? this.#error))) throw this.#error;
      throw new MailboxTakenError(this.name);
    }
    return null;
  }

  /**
   * A message handed over in memory (runtime/local-delivery.ts). `next` gives it when it
   * is the awaited one; its JetStream copy still comes through the consumer.
   */
  offer(m: LocalMessage): void {
    if (this.#closed) return;
    this.#local.set(m.seq, m);
    this.#wake?.();
  }

  /**
   * The next delivered message, unless it is the JetStream copy of a message handed over
   * locally and not yet taken (then the awaited local message, if there is one): junk,
   * a redelivery, a re-sent duplicate or a message from another process is settled at
   * once (a duplicate acked with its checkpoint, junk dead-lettered, a message ahead of
   * the schedule put back) rather than left to hold a slot of `max_ack_pending`, or to
   * block the queue behind it, while messages keep coming in memory. Between VNodes of
   * one process nothing comes through the consumer at all (local edges).
   */
  #take(awaitedSeq: number | undefined): JsMsg | LocalMessage | null {
    const head = this.#queue[0];
    if (head && !this.#copyOfPending(head)) return this.#queue.shift()!;
    if (awaitedSeq !== undefined && this.#local.size > 0) {
      for (const seq of this.#local.keys()) if (seq < awaitedSeq) this.#local.delete(seq); // applied from JetStream already
      const l = this.#local.get(awaitedSeq);
      if (l) {
        this.#local.delete(awaitedSeq);
        return l;
      }
    }
    return head ? this.#queue.shift()! : null;
  }

  /** `m` is the JetStream copy of a message handed over in memory that has not been taken yet. */
  #copyOfPending(m: JsMsg): boolean {
    const l = this.#local.get(seqOf(m));
    return !!l && l.copy && l.msgId === m.headers?.get(Header.MsgId);
  }

  /** Messages of this port not yet taken by the VNode: not delivered, delivered but unacked (for passivation decisions). */
  async pending(): Promise<number> {
    const info = await this.consumer.info(false);
    return info.num_pending + info.num_ack_pending;
  }

  /** Stop streaming (delivered, unacked messages are redelivered to the next consumer). */
  async close(): Promise<void> {
    this.#closed = true;
    this.#local.clear();
    await this.messages.close().catch(() => {});
  }
}
