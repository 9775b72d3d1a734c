/**
 * sendMessage and the server's max_payload: a tensor over it is refused before
 * publishing with a sentence that names the sizes and the fix; a 2 MiB tensor (one
 * wide-mlp activation at batch 256) round-trips through JetStream on the 8 MiB servers
 * DCNR starts. Real nats-servers from the shared helper.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { cleanup, setup } from '../test/helpers/nats.js';
import { DEFAULT_MAX_PAYLOAD } from '../cluster/nats-server.js';
import { sendMessage } from './envelope.js';
import { ensureDeploymentStreams } from './mailbox.js';
import { Stream } from './protocol.js';
import { validateMessage } from './validate.js';
import { rand } from '../test/helpers/random.js';

test('a tensor over the server max_payload is refused before publishing, naming the sizes and the fix', async () => {
  const { ns, nc } = await setup({ maxPayload: 256 * 1024 });
  try {
    assert.is(nc.info?.max_payload, 256 * 1024);
    const jsm = await jetstreamManager(nc);
    await ensureDeploymentStreams(jsm, 'small');
    const js = jetstream(nc);
    // 128×784 f32 = 401,408 bytes, over 256 KiB.
    const tensor = { shape: [128, 784], data: rand(128 * 784, 1) };
    try {
      await sendMessage(nc, { deployment: 'small', to: 0, kind: 'fwd', seq: 0, epoch: 0, from: 'test', tensor });
      assert.unreachable('sent a tensor over max_payload');
    } catch (err) {
      const msg = (err as Error).message;
      assert.match(msg, /tensor \[128,784\] is 401408 bytes/);
      assert.match(msg, /max_payload is 262144 bytes/);
      assert.match(msg, /raise max_payload in the server's config file \(e\.g\. `max_payload: 8MB`/);
    }
    assert.is((await jsm.streams.info(Stream.mailbox('small'))).state.messages, 0, 'nothing was published');
    // Under the limit (header bytes counted): still sent.
    await sendMessage(nc, { deployment: 'small', to: 0, kind: 'fwd', seq: 0, epoch: 0, from: 'test', tensor: { shape: [64, 784], data: rand(64 * 784, 2) } });
    assert.is((await jsm.streams.info(Stream.mailbox('small'))).state.messages, 1);
  } finally {
    await cleanup(ns, nc);
  }
});

test('a 2 MiB tensor round-trips through JetStream on a default (8 MiB) server', async () => {
  const { ns, nc } = await setup();
  try {
    assert.is(nc.info?.max_payload, DEFAULT_MAX_PAYLOAD);
    const jsm = await jetstreamManager(nc);
    await ensureDeploymentStreams(jsm, 'wide');
    const data = rand(256 * 2048, 3);
    await sendMessage(nc, { deployment: 'wide', to: 2, kind: 'fwd', seq: 7, epoch: 1, from: 'wide.1', tensor: { shape: [256, 2048], data } });
    const stored = await jsm.streams.getMessage(Stream.mailbox('wide'), { seq: 1 });
    assert.ok(stored, 'stored');
    assert.is(stored!.data.byteLength, 2 * 1024 * 1024);
    const v = validateMessage(stored!.header, stored!.data, { deployment: 'wide', index: 2, port: 'fwd' });
    assert.ok(v.ok, v.ok ? '' : v.error);
    if (v.ok) {
      assert.equal(v.msg.tensor!.shape, [256, 2048]);
      assert.ok(Buffer.compare(Buffer.from(v.msg.tensor!.data.buffer, v.msg.tensor!.data.byteOffset, v.msg.tensor!.data.byteLength), Buffer.from(data.buffer)) === 0, 'identical bytes');
    }
  } finally {
    await cleanup(ns, nc);
  }
});

test.run();
