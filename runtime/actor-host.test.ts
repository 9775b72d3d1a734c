/**
 * The actor host's lifecycle: an idle VNode passivates (its actor leaves memory) and
 * its next message brings it back from KV; release wakes a passivated VNode to stop.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { setTimeout as sleep } from 'node:timers/promises';
import '../actors/index.js';
import { cleanup, setup } from '../test/helpers/nats.js';
import { ActorHost, type HostEvent } from './actor-host.js';
import { openBuckets, writeDeployment } from './cluster-state.js';
import { sendMessage } from './envelope.js';
import { createKernels } from './kernels/index.js';
import { ensureDeploymentStreams } from './mailbox.js';
import { BUILTIN_MODELS, resolveModel } from './model.js';
import { StateStore } from './state-store.js';

test('an idle VNode passivates and its next message reactivates it', async () => {
  const { ns, nc } = await setup();
  try {
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const buckets = await openBuckets(nc);
    const store = new StateStore(buckets.state);
    const model = resolveModel(BUILTIN_MODELS['mnist-mlp']);
    const generation = await writeDeployment(buckets.deployments, { spec: model.spec, seed: 1, batch: 2, steps: 10, createdAt: new Date().toISOString(), hostedBy: 'local' });
    await ensureDeploymentStreams(jsm, model.spec.name);
    const events: HostEvent[] = [];
    const host = new ActorHost({ nc, js, jsm, store, kernels: await createKernels(), passivateAfterMs: 200, onEvent: (e) => void events.push(e) });
    // VNode 1 (relu over 128 features) alone.
    const exit = host.host({ model, seed: 1, generation }, 1, 1);
    const waitFor = async (pred: () => boolean, what: string) => {
      const deadline = Date.now() + 10_000;
      while (!pred()) {
        if (Date.now() > deadline) assert.unreachable(`timed out waiting for ${what}`);
        await sleep(20);
      }
    };
    await waitFor(() => events.some((e) => e.type === 'passivated'), 'passivation');
    assert.is(host.actor(model.spec.name, 1), undefined, 'no actor in memory while passivated');

    await sendMessage(js, { deployment: model.spec.name, to: 1, kind: 'fwd', seq: 0, epoch: 0, from: 'test', tensor: { shape: [2, 128], data: new Float32Array(256).fill(1) } });
    await waitFor(() => events.filter((e) => e.type === 'activated').length === 2, 'reactivation');
    await waitFor(() => events.some((e) => e.type === 'applied'), 'the message applied');
    const committed = await store.read(model.spec.name, 1);
    assert.is((committed!.meta.snapshot as any).context.schedule.fwdNext, 1, 'its state advanced, from KV');

    await waitFor(() => events.filter((e) => e.type === 'passivated').length === 2, 'second passivation');
    await host.release(model.spec.name, 1);
    assert.is(await exit, 'stopped');
  } finally {
    await cleanup(ns, nc);
  }
});

test.run();
