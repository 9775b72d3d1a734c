/**
 * publishAcked against a real nats-server: it resolves only with the stream's ack,
 * reports JetStream's de-duplication, and rejects — with a sentence naming the subject
 * — on no stream, on a stream's refusal, on a missing ack (timeout) and on a closed
 * connection; many in flight at once each get their own ack.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DiscardPolicy, jetstreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import { cleanup, setup } from '../test/helpers/nats.js';
import { publishAcked } from './publisher.js';

/** The error `p` rejects with; fails the test if it resolves. */
async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return String((err as Error).message);
  }
  assert.unreachable('resolved');
  return '';
}

const withId = (id: string) => {
  const h = headers();
  h.set('Nats-Msg-Id', id);
  return h;
};

test('acks carry the stream and seq; a repeated message id is a duplicate, stored once', async () => {
  const { ns, nc } = await setup();
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'pub', subjects: ['pub.>'] });
    const first = await publishAcked(nc, 'pub.a', 'one', withId('m1'));
    assert.equal(first, { stream: 'pub', seq: 1, duplicate: false });
    const again = await publishAcked(nc, 'pub.a', 'one', withId('m1'));
    assert.equal(again, { stream: 'pub', seq: 1, duplicate: true });
    // 500 in flight at once, not awaited one by one: each resolves with its own seq, in order.
    const acks = await Promise.all(Array.from({ length: 500 }, (_, i) => publishAcked(nc, 'pub.b', new Uint8Array(1024).fill(i % 256), withId(`b${i}`))));
    assert.equal(acks.map((a) => a.seq), Array.from({ length: 500 }, (_, i) => i + 2));
    assert.is((await jsm.streams.info('pub')).state.messages, 501);
  } finally {
    await cleanup(ns, nc);
  }
});

test('no stream, a refusing stream, no ack, a closed connection: each rejects with a clear error', async () => {
  const { ns, nc } = await setup();
  try {
    const jsm = await jetstreamManager(nc);
    assert.match(await rejection(publishAcked(nc, 'nowhere.x', 'x')), /no responders: no JetStream stream stores nowhere\.x/);
    await jsm.streams.add({ name: 'full', subjects: ['full.>'], max_msgs: 1, discard: DiscardPolicy.New });
    await publishAcked(nc, 'full.a', 'x');
    assert.match(await rejection(publishAcked(nc, 'full.a', 'y')), /JetStream refused a message to full\.a: maximum messages exceeded/);
    // A core subscriber that never answers: no 503, no ack.
    nc.subscribe('silent.x', { callback: () => {} });
    await nc.flush();
    assert.match(await rejection(publishAcked(nc, 'silent.x', 'x', undefined, 300)), /timeout: no JetStream ack for a message to silent\.x within 300 ms/);
    const pending = publishAcked(nc, 'silent.x', 'x', undefined, 60_000);
    await nc.close();
    assert.match(await rejection(pending), /connection closed before the JetStream ack came/);
    assert.match(await rejection(publishAcked(nc, 'full.b', 'x')), /closed/);
  } finally {
    await cleanup(ns, nc);
  }
});

test.run();
