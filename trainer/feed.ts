/**
 * Feeding a run: for each step, the batch's inputs to the first VNode (`fwd`) and its
 * targets to the loss (`target`), at most `window` steps ahead of the last loss
 * received; then `end` behind the last forward. Re-sending is safe (message ids
 * de-duplicate), so a NATS outage only delays the trainer. A feed to a VNode of this
 * process goes in memory only (`local`, trainer/local-feed.ts).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { sendMessage, type Envelope } from '../runtime/envelope.js';
import type { Signer } from '../runtime/security/signing.js';
import type { ResolvedModel } from '../runtime/model.js';
import type { TrainingData } from './data.js';
import type { MessageKind } from '../runtime/protocol.js';
import type { LocalFeed } from './local-feed.js';
import type { LossReader } from './losses.js';
import { retrying } from './retry.js';
import type { StepTelemetry } from './step-telemetry.js';

export interface FeedOptions {
  nc: NatsConnection;
  model: ResolvedModel;
  data: TrainingData;
  seed: number;
  batch: number;
  /** Steps [from, steps) are sent. */
  from: number;
  steps: number;
  window: number;
  losses: LossReader;
  telemetry: StepTelemetry;
  signal?: AbortSignal;
  /** Auth on: every feed is signed with the trainer's key. */
  signer?: Signer;
  /** Feeds to VNodes of this process go in memory (trainer/local-feed.ts). */
  local?: LocalFeed;
}

type RunOf = Pick<FeedOptions, 'model' | 'data' | 'seed' | 'batch' | 'steps'>;

/** Step `seq`'s feeds: its batch to the first VNode (`fwd`), its targets to the loss (`target`). A pure function of the run: made again, the same bytes. */
function stepFeeds(o: RunOf, seq: number, traceparent?: string): { fwd: Envelope; target: Envelope } {
  const { x, t } = o.data.batch(o.seed, seq, o.batch);
  const common = { deployment: o.model.spec.name, seq, epoch: 0, from: 'trainer', ...(traceparent ? { traceparent } : {}) };
  return {
    fwd: { ...common, to: 0, kind: 'fwd', tensor: x },
    target: { ...common, to: o.model.vnodes.length - 1, kind: 'target', tensor: t },
  };
}

/** The feed `kind` `seq` to VNode `to`, made again (trainer/local-feed.ts). */
export function feedMessage(o: RunOf, to: number, kind: MessageKind, seq: number): Envelope {
  if (kind === 'end') return { deployment: o.model.spec.name, to, kind, seq, epoch: 0, from: 'trainer' };
  if (kind === 'fwd' || kind === 'target') return stepFeeds(o, seq)[kind];
  throw new Error(`the trainer sends no ${kind} messages`);
}

export async function feed(o: FeedOptions): Promise<void> {
  const send = (e: Envelope) => (o.local?.send(e) ? undefined : retrying(o.signal, () => sendMessage(o.nc, e, o.signer)));
  for (let seq = o.from; seq < o.steps; seq++) {
    while (seq >= Math.max(o.losses.done(), o.from) + o.window) {
      o.signal?.throwIfAborted();
      await Promise.race([o.losses.next(), sleep(250)]);
    }
    const { fwd, target } = stepFeeds(o, seq, o.telemetry.started(seq, o.batch));
    await send(fwd);
    await send(target);
  }
  await send(feedMessage(o, 0, 'end', o.steps));
}
