/**
 * Local delivery on a real server: VNodes of one process take each other's messages in
 * memory, their JetStream copies are held as duplicates and acked by the checkpoints
 * that cover them (a finished run leaves every mailbox empty), and the parameters are
 * bit-identical to a run where everything goes through JetStream.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { jetstreamManager } from '@nats-io/jetstream';
import '../actors/index.js';
import { cleanup, setup } from '../test/helpers/nats.js';
import { createKernels } from './kernels/index.js';
import { LOCAL_DELIVERY_ENV } from './local-delivery.js';
import { BUILTIN_MODELS, resolveModel } from './model.js';
import { Stream } from './protocol.js';
import { train } from '../trainer/train.js';
import type { HostEvent } from './actor-host.js';

const kernels = await createKernels();

async function run(name: string, local: boolean) {
  const { ns, nc } = await setup();
  const before = process.env[LOCAL_DELIVERY_ENV];
  if (!local) process.env[LOCAL_DELIVERY_ENV] = 'off';
  try {
    const events: HostEvent[] = [];
    // Checkpoints every 7 messages: copies arrive both before and after the checkpoint that covers them.
    const model = resolveModel({ ...BUILTIN_MODELS['mnist-mlp'], name, checkpointEvery: 7 });
    const result = await train({ nc, model, steps: 40, batch: 16, seed: 4, kernels, hostLocally: true, onEvent: (e) => void events.push(e) });
    const left = (await (await jetstreamManager(nc)).streams.info(Stream.mailbox(name))).state.messages;
    return { result, events, left };
  } finally {
    if (before === undefined) delete process.env[LOCAL_DELIVERY_ENV];
    else process.env[LOCAL_DELIVERY_ENV] = before;
    await cleanup(ns, nc);
  }
}

test('one process: messages handed over in memory, copies held and acked, the same parameters as through JetStream', async () => {
  const viaJetStream = await run('through', false);
  const inMemory = await run('local', true);
  assert.is(inMemory.result.paramsHash, viaJetStream.result.paramsHash, 'bit-identical');
  const applied = (r: typeof inMemory) => r.events.filter((e) => e.type === 'applied').length;
  assert.is(applied(inMemory), applied(viaJetStream), 'every message applied once');
  // Through JetStream nothing is a duplicate; in memory, every VNode-to-VNode and trainer message's copy is.
  assert.is(viaJetStream.events.filter((e) => e.type === 'duplicate').length, 0);
  assert.ok(inMemory.events.filter((e) => e.type === 'duplicate').length > applied(inMemory) / 2, 'the copies came back and were recognised');
  assert.is(viaJetStream.left, 0, 'mailbox empty');
  assert.is(inMemory.left, 0, 'every copy acked: the mailbox is empty');
});

test.run();
