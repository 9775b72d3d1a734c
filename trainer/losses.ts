/**
 * The losses of a run, read from its metrics stream (the loss VNode publishes one
 * record per step; a resumed trainer reads the old ones too). Anyone can publish on the
 * metrics subject: a record that is not a step metric of this run is skipped (and said
 * once), never allowed to stop the reading.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
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

export async function readLosses(js: JetStreamClient, deployment: string, steps: number, onMetric: (m: StepMetric, done: number) => void): Promise<LossReader> {
  const losses: number[] = [];
  let done = 0;
  let wake: (() => void) | undefined;
  let warned = false;
  // Short pulls: after a NATS restart a pending pull is gone, and the client only notices
  // when its idle heartbeats stop (half the expiry). The default 30 s stalled training.
  const messages = await (await js.consumers.get(Stream.metrics(deployment))).consume({ expires: 2000 });
  const reading = (async () => {
    for await (const m of messages) {
      const metric = parseStepMetric(m.data, steps);
      if (!metric) {
        if (!warned) process.stderr.write(`dcnr: ignoring a malformed record on ${m.subject} (not a step metric of this run)\n`);
        warned = true;
        continue;
      }
      if (losses[metric.seq] !== undefined) continue; // a resend
      losses[metric.seq] = metric.loss;
      while (losses[done] !== undefined) done++;
      onMetric(metric, done);
      wake?.();
    }
  })();
  return {
    losses,
    done: () => done,
    next: () => new Promise<void>((resolve) => (wake = resolve)),
    stop() {
      messages.stop();
      void reading.catch(() => {});
    },
  };
}
