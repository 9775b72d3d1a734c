/**
 * Local delivery on a real server, in its three modes (runtime/local-delivery.ts):
 * - `only` (the default): messages between VNodes of one process, and the trainer's
 *   feeds to them, go in memory only, kept until covered (senders' outboxes; the
 *   trainer makes a feed again);
 * - `copy`: handed over in memory AND published, the copies held as duplicates;
 * - `off`: everything through JetStream.
 * All three give bit-identical parameters, apply every message once, and leave every
 * mailbox empty.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { jetstreamManager } from '@nats-io/jetstream';
import '../actors/index.js';
import { cleanup, setup } from '../test/helpers/nats.js';
import { createKernels } from './kernels/index.js';
import { LOCAL_DELIVERY_ENV, type LocalDeliveryMode } from './local-delivery.js';
import { BUILTIN_MODELS, resolveModel } from './model.js';
import { Stream } from './protocol.js';
import { train } from '../trainer/train.js';
import type { HostEvent } from './actor-host.js';

const kernels = await createKernels();
const STEPS = 40;

async function run(name: string, mode: LocalDeliveryMode) {
  const { ns, nc } = await setup();
  const before = process.env[LOCAL_DELIVERY_ENV];
  process.env[LOCAL_DELIVERY_ENV] = mode;
  try {
    const events: HostEvent[] = [];
    // Checkpoints every 7 messages: copies (and outbox entries) are covered both before and after they are sent on.
    const model = resolveModel({ ...BUILTIN_MODELS['mnist-mlp'], name, checkpointEvery: 7 });
    const result = await train({ nc, model, steps: STEPS, batch: 16, seed: 4, kernels, hostLocally: true, onEvent: (e) => void events.push(e) });
    const { state } = await (await jetstreamManager(nc)).streams.info(Stream.mailbox(name));
    return { result, events, left: state.messages, stored: state.last_seq };
  } finally {
    if (before === undefined) delete process.env[LOCAL_DELIVERY_ENV];
    else process.env[LOCAL_DELIVERY_ENV] = before;
    await cleanup(ns, nc);
  }
}

test('one process: in memory only, with copies, or through JetStream — the same parameters, every message applied once, mailboxes empty', async () => {
  const off = await run('through', 'off');
  const copy = await run('copies', 'copy');
  const only = await run('local', 'only');
  const applied = (r: typeof off) => r.events.filter((e) => e.type === 'applied').length;
  const duplicates = (r: typeof off) => r.events.filter((e) => e.type === 'duplicate').length;
  for (const r of [copy, only]) {
    assert.is(r.result.paramsHash, off.result.paramsHash, 'bit-identical');
    assert.is(applied(r), applied(off), 'every message applied once');
  }
  // Through JetStream nothing is a duplicate; with copies, every VNode-to-VNode and trainer message's copy is.
  assert.is(duplicates(off), 0);
  assert.ok(duplicates(copy) > applied(copy) / 2, `the copies came back and were recognised (${duplicates(copy)} of ${applied(copy)})`);
  // In memory only: neither the trainer's feeds (trainer/local-feed.ts) nor messages between VNodes are
  // stored — only what a finishing sender's outbox still held (9 of 40 steps' 200 messages, measured).
  assert.ok(only.stored <= STEPS, `almost nothing is stored (${only.stored} messages; with copies ${copy.stored})`);
  assert.ok(copy.stored > 4 * STEPS, `with copies every message is stored (${copy.stored})`);
  for (const r of [off, copy, only]) assert.is(r.left, 0, 'every message acked: the mailbox is empty');
});

test.run();
