/**
 * The losses of a run, read from its metrics stream (the loss VNode publishes one
 * record per step; a resumed trainer reads the old ones too). Anyone can publish on the
 * metrics subject: a record that is not a step metric of this run is skipped (and said
 * once), never allowed to stop the reading.
 */
import { DeliverPolicy, type JetStreamClient } from '@nats-io/jetstream';
import { Stream, type StepMetric } from '../runtime/protocol.js';
import { parseStepMetric } from '../runtime/records.js';

export interface LossReader {
  /** Loss per seq, as they arrive. */
  readonly losses: number[];
  /** Steps 0 … done−1 all have their loss. */
  done(): number;
  /** Resolves at the next new loss. */
  next(): Promise<void>;
  stop(): void;
}

/** No record for this long while the stream has newer ones: the reader is stuck. */
const STUCK_MS = 5000;

/** `vnode`: only that loss VNode's records (a federated deployment has one loss per replica). @default every record */
export async function readLosses(js: JetStreamClient, deployment: string, steps: number, onMetric: (m: StepMetric, done: number) => void, vnode?: string): Promise<LossReader> {
  const losses: number[] = [];
  let done = 0;
  let wake: (() => void) | undefined;
  let warned = false;
  let stopped = false;
  let current: { stop(): void } | undefined;
  // The stream sequence read last: a re-opened reader starts after it.
  let lastSeq = 0;
  const open = async () =>
    // Short pulls: after a NATS restart a pending pull is gone, and the client only notices
    // when its idle heartbeats stop (half the expiry). The default 30 s stalled training.
    (await js.consumers.get(Stream.metrics(deployment), lastSeq > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: lastSeq + 1 } : {})).consume({ expires: 2000 });
  const readAll = async (messages: Awaited<ReturnType<typeof open>>) => {
    for await (const m of messages) {
      lastSeq = m.seq;
      lastRead = Date.now();
      const metric = parseStepMetric(m.data, steps);
      if (!metric) {
        if (!warned) process.stderr.write(`dcnr: ignoring a malformed record on ${m.subject} (not a step metric of this run)\n`);
        warned = true;
        continue;
      }
      if (vnode !== undefined && metric.vnode !== vnode) continue; // another replica's loss
      if (losses[metric.seq] !== undefined) continue; // a resend
      losses[metric.seq] = metric.loss;
      while (losses[done] !== undefined) done++;
      onMetric(metric, done);
      wake?.();
    }
  };
  const first = await open();
  current = first;
  // A reader that neither ends nor delivers while the stream holds records past what it
  // read (its consumer lost on a dead server, the client still waiting) is replaced too.
  let lastRead = Date.now();
  const jsm = await js.jetstreamManager();
  const stuck = setInterval(() => {
    if (stopped || Date.now() - lastRead < STUCK_MS) return;
    void jsm.streams.info(Stream.metrics(deployment)).then(
      (info) => {
        if (!stopped && info.state.last_seq > lastSeq && Date.now() - lastRead >= STUCK_MS) {
          lastRead = Date.now();
          current?.stop();
        }
      },
      () => {},
    );
  }, 1000);
  stuck.unref();
  // An ordered consumer can end for good when the server that held it dies and its
  // re-creation fails mid-failover (seen on a 3-node cluster: the losses stopped, and
  // with them the feed). Until stopped, a reader that ends is opened again after the
  // last record it read.
  const reading = (async () => {
    let messages = first;
    while (!stopped) {
      await readAll(messages).catch(() => {});
      // Opened again with a backoff while the cluster is still electing.
      for (let attempt = 0; !stopped; attempt++) {
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
        const next = stopped ? null : await open().catch(() => null);
        if (next) {
          messages = current = next;
          break;
        }
      }
    }
  })();
  return {
    losses,
    done: () => done,
    next: () => new Promise<void>((resolve) => (wake = resolve)),
    stop() {
      stopped = true;
      clearInterval(stuck);
      current?.stop();
      void reading.catch(() => {});
    },
  };
}
