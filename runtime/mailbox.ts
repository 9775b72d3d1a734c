/**
 * Durable mailboxes: one JetStream work-queue stream per deployment, one durable
 * pull consumer per (VNode, port), consumed one message at a time.
 *
 * A message is acked only after the state it produced is committed, so a crash
 * redelivers it (and the VNode's watermark de-duplicates it). Activating a VNode
 * deletes and re-creates its consumers: delivery restarts at the oldest unacked
 * message at once (no ack-wait delay after a crash), and a fenced old owner's
 * outstanding pulls die with the old consumer.
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
} from '@nats-io/jetstream';
import { Stream, Subject, type Port } from './protocol.js';
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
    // Re-sent outputs (after a crash or a move) carry the same Nats-Msg-Id: dropped here.
    duplicate_window: 120_000 * NANOS,
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
}

/** Delete a deployment's mailboxes and metrics (a fresh run). */
export async function removeDeploymentStreams(jsm: JetStreamManager, deployment: string): Promise<void> {
  for (const name of [Stream.mailbox(deployment), Stream.metrics(deployment)]) {
    await jsm.streams.delete(name).catch(() => {});
  }
}

/** Consumers are named per owner epoch, so a fenced owner can never pull from its successor's consumer. */
export const consumerName = (deployment: string, index: number, port: Port, epoch: number) => `${deployment}_${index}_${port}_e${epoch}`;

/** Thrown by `next()` when the consumer is gone: a newer owner re-created the mailbox. */
export class MailboxTakenError extends Error {
  constructor(name: string) {
    super(`mailbox consumer ${name} was deleted: a newer owner took this VNode`);
    this.name = 'MailboxTakenError';
  }
}

/** One port of one VNode's mailbox. */
export class Mailbox {
  private constructor(
    private readonly consumer: Consumer,
    readonly name: string,
  ) {}

  /** Re-create the port's consumer under `epoch` (see the module comment) and return the mailbox. */
  static async open(js: JetStreamClient, jsm: JetStreamManager, deployment: string, index: number, port: Port, epoch: number): Promise<Mailbox> {
    const stream = Stream.mailbox(deployment);
    const name = consumerName(deployment, index, port, epoch);
    // A work-queue stream allows one consumer per subject: remove every earlier owner's.
    const prefix = `${deployment}_${index}_${port}_e`;
    for await (const info of jsm.consumers.list(stream)) {
      if (info.name.startsWith(prefix)) await jsm.consumers.delete(stream, info.name).catch(() => {});
    }
    await jsm.consumers.add(stream, {
      durable_name: name,
      filter_subject: Subject.mailbox(deployment, index, port),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: 60_000 * NANOS,
      max_deliver: -1,
    });
    return new Mailbox(await js.consumers.get(stream, name), name);
  }

  /**
   * The next message, or null if none came within `expiresMs`.
   * @throws MailboxTakenError when a newer owner has replaced the consumer.
   */
  async next(expiresMs = 1000): Promise<JsMsg | null> {
    try {
      return await this.consumer.next({ expires: expiresMs });
    } catch (err) {
      if (/consumer (not found|deleted)|no responders/i.test(String((err as Error)?.message ?? err))) throw new MailboxTakenError(this.name);
      throw err;
    }
  }

  /** Messages waiting in this port, not yet delivered (for passivation decisions). */
  async pending(): Promise<number> {
    const info = await this.consumer.info(true);
    return info.num_pending;
  }
}
