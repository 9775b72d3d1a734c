/**
 * JetStream publishes with their acks collected on one subscription per connection.
 *
 * `js.publish` of @nats-io/jetstream 3.4 is a core request per message: a request
 * object, a timer, a mux entry, and — on every successful reply — an Error built to
 * reject the request's already-settled promise (`RequestOne.cancel`). Measured on the
 * one-process mnist-mlp run, that Error alone was 2% of the process's CPU. A VNode
 * sends thousands of messages a second and never waits on them one by one, so here a
 * publish is a core publish whose reply subject names a token under this connection's
 * own inbox; one wildcard subscription takes the PubAcks, and one timer per connection
 * sweeps the overdue ones. Same wire protocol, same guarantees: the promise resolves
 * only when the stream has stored the message (or dropped it as a duplicate of its
 * `Nats-Msg-Id`, where one is set), and rejects on a JetStream error, on no stream (503), on timeout, or
 * when the connection closes.
 */
import { createInbox, type MsgHdrs, type NatsConnection, type Msg } from '@nats-io/transport-node';

export interface PubAck {
  stream: string;
  seq: number;
  duplicate: boolean;
}

/** How long a publish waits for its ack (nats.js's JetStream default). */
export const PUBLISH_TIMEOUT_MS = 5000;
const SWEEP_MS = 250;

/** Time publishes of this process spent in flight, publish to ack, summed (for `dcnr bench`'s step breakdown). */
export const publishStats = { acked: 0, inFlightMs: 0 };

interface Pending {
  sentAt: number;
  subject: string;
  timeoutMs: number;
  deadline: number;
  resolve: (ack: PubAck) => void;
  reject: (err: Error) => void;
}

/** A publish that got no ack in time; its name and message say "timeout" (what `retrying` retries). */
export class PublishTimeoutError extends Error {
  constructor(subject: string, ms: number) {
    super(`timeout: no JetStream ack for a message to ${subject} within ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

class AckedPublisher {
  readonly #inbox: string;
  readonly #pending = new Map<string, Pending>();
  #next = 0;
  #timer: NodeJS.Timeout | null = null;
  #closed: Error | null = null;

  constructor(private readonly nc: NatsConnection) {
    this.#inbox = createInbox((nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
    nc.subscribe(`${this.#inbox}.*`, { callback: (err, m) => (err ? this.#failAll(err) : this.#onAck(m)) });
    void nc.closed().then(() => this.#failAll(new Error('the NATS connection closed before the JetStream ack came')));
  }

  publish(subject: string, payload: Uint8Array | string, headers: MsgHdrs | undefined, timeoutMs: number): Promise<PubAck> {
    if (this.#closed) return Promise.reject(this.#closed);
    const token = (this.#next++).toString(36);
    return new Promise<PubAck>((resolve, reject) => {
      this.#pending.set(token, { sentAt: performance.now(), subject, timeoutMs, deadline: Date.now() + timeoutMs, resolve, reject });
      try {
        this.nc.publish(subject, payload, { headers, reply: `${this.#inbox}.${token}` });
      } catch (err) {
        this.#pending.delete(token);
        reject(err as Error);
        return;
      }
      this.#timer ??= setInterval(() => this.#sweep(), SWEEP_MS).unref();
    });
  }

  #onAck(m: Msg): void {
    const token = m.subject.slice(this.#inbox.length + 1);
    const p = this.#pending.get(token);
    if (!p) return; // timed out already
    this.#pending.delete(token);
    this.#idle();
    if (m.data.length === 0 && m.headers?.code === 503) {
      return p.reject(new Error(`no responders: no JetStream stream stores ${p.subject} (503)`));
    }
    let r: { stream?: unknown; seq?: unknown; duplicate?: unknown; error?: { code?: number; err_code?: number; description?: string } };
    try {
      r = JSON.parse(new TextDecoder().decode(m.data));
    } catch {
      return p.reject(new Error(`invalid JetStream ack for ${p.subject}: not JSON`));
    }
    if (r.error) return p.reject(new Error(`JetStream refused a message to ${p.subject}: ${r.error.description ?? 'error'} (${r.error.err_code ?? r.error.code})`));
    if (typeof r.stream !== 'string' || r.stream === '' || typeof r.seq !== 'number') {
      return p.reject(new Error(`invalid JetStream ack for ${p.subject}`));
    }
    publishStats.acked++;
    publishStats.inFlightMs += performance.now() - p.sentAt;
    p.resolve({ stream: r.stream, seq: r.seq, duplicate: r.duplicate === true });
  }

  #sweep(): void {
    const now = Date.now();
    for (const [token, p] of this.#pending) {
      if (p.deadline > now) continue;
      this.#pending.delete(token);
      p.reject(new PublishTimeoutError(p.subject, p.timeoutMs));
    }
    this.#idle();
  }

  /** No timer while nothing waits (an idle process keeps no interval running). */
  #idle(): void {
    if (this.#pending.size === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  #failAll(err: Error): void {
    if (this.nc.isClosed()) this.#closed = err;
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
    this.#idle();
  }
}

const publishers = new WeakMap<NatsConnection, AckedPublisher>();

/**
 * Publish to a JetStream-captured subject and resolve with the stream's ack. Set
 * `Nats-Msg-Id` in `headers` for de-duplication (the metrics stream; not mailboxes: `Header.MsgId`).
 */
export function publishAcked(nc: NatsConnection, subject: string, payload: Uint8Array | string, headers?: MsgHdrs, timeoutMs = PUBLISH_TIMEOUT_MS): Promise<PubAck> {
  let p = publishers.get(nc);
  if (!p) publishers.set(nc, (p = new AckedPublisher(nc)));
  return p.publish(subject, payload, headers, timeoutMs);
}
