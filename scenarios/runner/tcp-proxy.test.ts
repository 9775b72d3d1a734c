/**
 * The partition proxy against a real nats-server: traffic flows through it, a cut
 * resets every connection and refuses new ones while the client process lives on,
 * and after heal the client reconnects by itself. (Core publishes sent into a reset
 * may be lost, as on a real network: DCNR's data goes through acked JetStream publishes.)
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '@nats-io/transport-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanup, setup } from '../../test/helpers/nats.js';
import { startTcpProxy } from './tcp-proxy.js';

test('forwards, cuts, heals', async () => {
  const { ns, nc } = await setup();
  const proxy = await startTcpProxy(ns.url);
  const client = await connect({ servers: proxy.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  const got: string[] = [];
  nc.subscribe('p.>', { callback: (_e, m) => void got.push(m.string()) });
  await nc.flush();
  try {
    client.publish('p.1', 'before');
    await client.flush();
    await sleep(100);
    assert.equal(got, ['before']);

    let disconnected = false;
    let reconnected = false;
    void (async () => {
      for await (const s of client.status()) {
        if (s.type === 'disconnect') disconnected = true;
        if (s.type === 'reconnect') reconnected = true;
      }
    })();
    proxy.cut();
    assert.is(proxy.isCut, true);
    // The client notices the reset and keeps retrying.
    for (let i = 0; i < 100 && !disconnected; i++) await sleep(20);
    assert.ok(disconnected, 'the client saw its connection reset');
    client.publish('p.2', 'during');
    await sleep(500);
    assert.equal(got, ['before'], 'nothing crosses a cut proxy');

    assert.is(reconnected, false);
    proxy.heal();
    for (let i = 0; i < 250 && !reconnected; i++) await sleep(20);
    assert.ok(reconnected, 'the client reconnected through the healed proxy');
    client.publish('p.3', 'after');
    await client.flush();
    await sleep(200);
    assert.is(got[0], 'before');
    assert.is(got.at(-1), 'after');
  } finally {
    await client.close();
    await proxy.close();
    await cleanup(ns, nc);
  }
});

test('a bad target is refused clearly', async () => {
  await startTcpProxy('not a target').then(
    () => assert.unreachable(),
    (err: Error) => assert.match(err.message, /target must be host:port or nats:\/\/host:port/),
  );
});

test.run();
