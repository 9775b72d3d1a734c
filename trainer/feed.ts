/**
 * Feeding a run: for each step, the batch's inputs to the first VNode (`fwd`) and its
 * targets to the loss (`target`), at most `window` steps ahead of the last loss
 * received; then `end` behind the last forward. Re-sending is safe (message ids
 * de-duplicate), so a NATS outage only delays the trainer.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { trainingBatch, type Dataset } from '../runtime/data/mnist.js';
import { sendMessage } from '../runtime/envelope.js';
import type { Signer } from '../runtime/security/signing.js';
import type { ResolvedModel } from '../runtime/model.js';
import type { LossReader } from './losses.js';
import { retrying } from './retry.js';
import type { StepTelemetry } from './step-telemetry.js';

export interface FeedOptions {
  nc: NatsConnection;
  model: ResolvedModel;
  data: Dataset;
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
}

export async function feed(o: FeedOptions): Promise<void> {
  const { nc, model } = o;
  const dep = model.spec.name;
  const last = model.vnodes.length - 1;
  for (let seq = o.from; seq < o.steps; seq++) {
    while (seq >= Math.max(o.losses.done(), o.from) + o.window) {
      o.signal?.throwIfAborted();
      await Promise.race([o.losses.next(), sleep(250)]);
    }
    const { x, t } = trainingBatch(o.data, o.seed, seq, o.batch);
    const traceparent = o.telemetry.started(seq, o.batch);
    const common = { deployment: dep, seq, epoch: 0, from: 'trainer', traceparent };
    await retrying(o.signal, () => sendMessage(nc, { ...common, to: 0, kind: 'fwd', tensor: { shape: [o.batch, model.inputFeatures], data: x } }, o.signer));
    await retrying(o.signal, () => sendMessage(nc, { ...common, to: last, kind: 'target', tensor: { shape: [o.batch, model.outputFeatures], data: t } }, o.signer));
  }
  await retrying(o.signal, () => sendMessage(nc, { deployment: dep, to: 0, kind: 'end', seq: o.steps, epoch: 0, from: 'trainer' }, o.signer));
}
