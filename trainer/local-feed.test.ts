/**
 * The trainer's in-memory feeds (trainer/local-feed.ts) on a real server: a feed to a
 * receiver of this process is handed over and not stored; what the receiver's committed
 * checkpoint covers is forgotten; what it does not is made again and published to its
 * mailbox when the receiver leaves the process — the same bytes under the same id.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { cleanup, setup } from '../test/helpers/nats.js';
import { waitFor } from '../test/helpers/wait.js';
import type { Envelope } from '../runtime/envelope.js';
import { announceCovering, receiveLocally, type LocalMessage } from '../runtime/local-delivery.js';
import { ensureDeploymentStreams } from '../runtime/mailbox.js';
import { Header, Stream, Subject, type MessageKind } from '../runtime/protocol.js';
import { fromBytes } from '../runtime/tensor.js';
import { localFeed } from './local-feed.js';

const DEP = 'feedtest';
const fwd = (seq: number): Envelope => ({ deployment: DEP, to: 0, kind: 'fwd', seq, epoch: 0, from: 'trainer', tensor: { shape: [1, 3], data: new Float32Array([seq, seq + 0.5, -seq]) } });

test('handed over in memory; covered ones forgotten; the rest published when the receiver leaves', async () => {
  const { ns, nc } = await setup();
  try {
    const jsm = await jetstreamManager(nc);
    await ensureDeploymentStreams(jsm, DEP);
    const remade: Array<[number, MessageKind, number]> = [];
    const feed = localFeed({ nc, deployment: DEP, remake: (to, kind, seq) => (remade.push([to, kind, seq]), fwd(seq)), log: () => {} });
    assert.is(feed.send(fwd(0)), false, 'no receiver here: the caller publishes');

    const got: LocalMessage[] = [];
    const unregister = receiveLocally(nc, DEP, 0, (m) => void got.push(m));
    for (let seq = 0; seq < 5; seq++) assert.ok(feed.send(fwd(seq)), `fwd ${seq} handed over`);
    assert.equal(got.map((m) => [m.seq, m.copy]), [[0, false], [1, false], [2, false], [3, false], [4, false]], 'in memory only');
    // A committed checkpoint covering fwd 0 and 1; one that fails covers nothing.
    announceCovering(nc, DEP, 0, { fwdNext: 2, bwdNext: 0, targetNext: 0, endAt: null }, Promise.resolve());
    announceCovering(nc, DEP, 0, { fwdNext: 4, bwdNext: 0, targetNext: 0, endAt: null }, Promise.reject(new Error('fenced')));
    await new Promise((r) => setTimeout(r, 20));
    const { state: before } = await jsm.streams.info(Stream.mailbox(DEP));
    assert.is(before.messages, 0, 'nothing stored while the receiver is here');

    unregister(); // it left the process (failed, moved, stopped)
    await feed.settled();
    assert.equal(remade, [[0, 'fwd', 2], [0, 'fwd', 3], [0, 'fwd', 4]], 'what it had not covered, made again');
    const js = jetstream(nc);
    await jsm.consumers.add(Stream.mailbox(DEP), { durable_name: 'check', ack_policy: AckPolicy.Explicit, filter_subject: Subject.mailbox(DEP, 0, 'fwd') });
    const consumer = await js.consumers.get(Stream.mailbox(DEP), 'check');
    const stored: Array<[string | undefined, number[]]> = [];
    await waitFor('three stored', async () => {
      const m = await consumer.next({ expires: 1000 });
      if (m) {
        stored.push([m.headers?.get(Header.MsgId), [...fromBytes(m.data)]]);
        m.ack();
      }
      return stored.length === 3;
    });
    assert.equal(stored.map(([, data]) => data), [[2, 2.5, -2], [3, 3.5, -3], [4, 4.5, -4]], 'the same bytes');
    assert.equal(stored.map(([id]) => id), got.slice(2).map((m) => m.msgId), 'under the same message ids');

    // Back again: new feeds go in memory; nothing older is ours to re-send any more.
    receiveLocally(nc, DEP, 0, (m) => void got.push(m))();
    await feed.settled();
    assert.is(remade.length, 3, 'published ones are the mailbox\'s now');
    feed.stop();
  } finally {
    await cleanup(ns, nc);
  }
});

test.run();
