/**
 * The NATS fixtures the fault scenarios stand on: a single server stopped gracefully and
 * restarted keeps its JetStream data on the same port; a 3-node JetStream cluster with
 * R3 buckets (DCNR_REPLICAS=3) keeps every acknowledged write when a node is SIGKILLed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { rmSync } from 'node:fs';
import { tempDir } from '../test/helpers/nats.js';
import { openBuckets } from '../runtime/cluster-state.js';
import { startNatsCluster, startNatsServer } from './nats-server.js';
import { replicas } from '../runtime/replicas.js';

test('DCNR_REPLICAS: 1 by default, 1|3|5 accepted, anything else refused clearly', () => {
  const saved = process.env.DCNR_REPLICAS;
  try {
    delete process.env.DCNR_REPLICAS;
    assert.is(replicas(), 1);
    process.env.DCNR_REPLICAS = '3';
    assert.is(replicas(), 3);
    process.env.DCNR_REPLICAS = '2';
    assert.throws(() => replicas(), /DCNR_REPLICAS must be 1, 3 or 5, got "2"/);
  } finally {
    if (saved === undefined) delete process.env.DCNR_REPLICAS;
    else process.env.DCNR_REPLICAS = saved;
  }
});

test('a gracefully stopped server restarts on its port with its data', async () => {
  const dir = tempDir('dcnr-restart-');
  let server = await startNatsServer({ storeDir: dir });
  const port = server.port;
  try {
    let nc = await connect({ servers: server.url });
    const kv = await new Kvm(nc).create('t', { history: 1 });
    for (let i = 0; i < 50; i++) await kv.put(`k${i}`, String(i));
    await nc.close();
    await server.stop();
    server = await server.restart();
    assert.is(server.port, port);
    nc = await connect({ servers: server.url });
    const again = await new Kvm(nc).open('t');
    for (let i = 0; i < 50; i++) assert.is((await again.get(`k${i}`))?.string(), String(i));
    await nc.close();
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a 3-node cluster with R3 buckets loses no acknowledged write when a node is SIGKILLed', async () => {
  const dir = tempDir('dcnr-cluster-');
  const cluster = await startNatsCluster({ storeDir: dir, nodes: 3 });
  const saved = process.env.DCNR_REPLICAS;
  process.env.DCNR_REPLICAS = '3';
  try {
    assert.is(cluster.urls.length, 3);
    assert.is(cluster.url.split(',').length, 3);
    const nc = await connect({ servers: cluster.urls, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const { state } = await openBuckets(nc);
    assert.is((await state.status()).replicas, 3, 'the bucket is replicated on all three nodes');
    const acked: number[] = [];
    for (let i = 0; i < 100; i++) {
      await state.put(`k${i}`, String(i));
      acked.push(i);
    }
    await cluster.servers[2].kill();
    // Writes go on with two of three nodes (after an election if the leader died).
    for (let i = 100; i < 120; i++) {
      for (let attempt = 0; ; attempt++) {
        try {
          await state.put(`k${i}`, String(i));
          acked.push(i);
          break;
        } catch (err) {
          if (attempt > 60) throw err;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    }
    cluster.servers[2] = await cluster.servers[2].restart();
    for (const i of acked) assert.is((await state.get(`k${i}`))?.string(), String(i), `k${i}`);
    await nc.close();
  } finally {
    if (saved === undefined) delete process.env.DCNR_REPLICAS;
    else process.env.DCNR_REPLICAS = saved;
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('buckets created R1 keep working when later opened with DCNR_REPLICAS=3 (bound as they are)', async () => {
  const dir = tempDir('dcnr-r1r3-');
  const server = await startNatsServer({ storeDir: dir });
  const saved = process.env.DCNR_REPLICAS;
  const nc = await connect({ servers: server.url });
  try {
    process.env.DCNR_REPLICAS = '1';
    const r1 = await openBuckets(nc);
    await r1.state.put('k', 'before');
    process.env.DCNR_REPLICAS = '3';
    const r3 = await openBuckets(nc);
    assert.is((await r3.state.get('k'))?.string(), 'before');
    await r3.state.put('k', 'after');
    assert.is((await r3.state.get('k'))?.string(), 'after');
    assert.is((await r3.state.status()).replicas, 1, 'an existing bucket is not silently re-replicated');
  } finally {
    if (saved === undefined) delete process.env.DCNR_REPLICAS;
    else process.env.DCNR_REPLICAS = saved;
    await nc.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
