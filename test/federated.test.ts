/**
 * `dcnr train --replicas R` as a user runs it (docs/federated.md), against real
 * nats-servers and real feeder processes:
 * - each data owner only ever sends rows of its own shard (watched on the wire: every
 *   feed to replica r's first VNode is a row of shard r), the shards are disjoint;
 * - a junk update on an aggregator's port is dead-lettered with its reason, and changes nothing;
 * - every replica and aggregator end with the same parameters, and the run's paramsHash
 *   is the same whether one process hosts everything or two PNodes do (invariant 3);
 * - a run that is not a whole number of rounds, or asks for an unknown compression, is
 *   refused before anything starts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import { Header, ownerKey, PROTOCOL_VERSION, stateMetaKey, Stream } from '../runtime/protocol.js';
import { openBuckets } from '../runtime/cluster-state.js';
import { fromBytes } from '../runtime/tensor.js';
import { readShard, shardFile } from '../trainer/shards.js';
import { dcnr } from './helpers/dcnr.js';
import { cleanup, setup, tempDir } from './helpers/nats.js';

const dir = tempDir('dcnr-federated-');
test.after(() => rmSync(dir, { recursive: true, force: true }));
const FEATURES = 784;
const N = 6; // mnist-mlp's VNodes per replica
const args = ['--model', 'mnist-mlp', '--replicas', '3', '--sync-every', '10', '--steps', '30', '--batch', '16', '--seed', '3', '--compress', 'topk:0.05', '--json'];
let hash = '';

const rowKey = (x: Float32Array, i: number) => createHash('sha1').update(Buffer.from(x.buffer, x.byteOffset + i * FEATURES * 4, FEATURES * 4)).digest('hex');

test('three data owners: each feeds its replica rows of its own shard only; a junk update is dead-lettered; the replicas end alike', async () => {
  const { ns, nc } = await setup();
  try {
    const fed = new Map<number, string[]>(); // VNode fed → row keys
    let junk: Promise<unknown> | undefined;
    const sub = nc.subscribe('dcnr.mbox.mnist-mlp.*.fwd', {
      callback: (_err, m) => {
        if (m.headers?.get(Header.From) !== 'trainer') return;
        const to = Number(m.headers.get(Header.VNode));
        const x = fromBytes(m.data);
        const keys = fed.get(to) ?? [];
        for (let i = 0; i < x.length / FEATURES; i++) keys.push(rowKey(x, i));
        fed.set(to, keys);
        // Once the run is deployed: a frame that decodes to nothing, as replica 0's delta of round 0 to layer 0's aggregator (VNode 3·6).
        if (!junk) {
          const h = headers();
          for (const [k, v] of Object.entries({ [Header.Version]: String(PROTOCOL_VERSION), [Header.Kind]: 'delta', [Header.Deployment]: 'mnist-mlp', [Header.VNode]: '18', [Header.Seq]: '0', [Header.Epoch]: '0', [Header.From]: 'mnist-mlp.0.layer.dense', [Header.Shape]: '2', [Header.DType]: 'bytes' })) h.set(k, v);
          junk = jetstream(nc).publish('dcnr.mbox.mnist-mlp.18.delta', new Uint8Array([4, 0, 0, 0, 1, 2, 3, 4]), { headers: h });
        }
      },
    });
    const store = join(dir, 'one', 'store');
    const run = await dcnr(['train', '--nats', ns.url, '--pnodes', '0', '--store', store, ...args]);
    sub.unsubscribe();
    assert.is(run.code, 0, run.stderr.slice(-3000));
    const j = run.json!;
    hash = j.paramsHash;
    assert.is(j.replicas, 3);
    assert.is(j.syncEvery, 10);
    assert.is(j.compress, 'topk:0.05');
    assert.ok(j.replicasIdentical, 'every replica and aggregator hold the same parameters');
    assert.ok(j.compressionRatio > 50, `compression ratio ${j.compressionRatio} (a round every 10 steps, 5% of the values)`);
    assert.is(j.bytesPerStep, j.bytesSent / 30);

    // The shards: disjoint; and every row fed to replica r's first VNode is one of shard r's.
    const shards = [0, 1, 2].map((r) => readShard(shardFile(join(dir, 'one', 'mnist-mlp-shards'), r, 3)));
    const sets = shards.map((s) => new Set(Array.from({ length: s.header.rows }, (_, i) => rowKey(s.kind === 'mnist' ? s.data.train.x : new Float32Array(0), i))));
    for (let a = 0; a < 3; a++) for (let b = a + 1; b < 3; b++) assert.is([...sets[a]].filter((k) => sets[b].has(k)).length, 0, `shards ${a} and ${b} share no row`);
    assert.equal([...fed.keys()].sort((a, b) => a - b), [0, 6, 12], 'feeds go to each replica\'s first VNode only');
    for (let r = 0; r < 3; r++) {
      const rows = fed.get(r * N)!;
      assert.is(rows.length, 30 * 16, `replica ${r} got every row of its 30 steps once`);
      assert.ok(rows.every((k) => sets[r].has(k)), `replica ${r} got only rows of shard ${r}`);
    }

    // The junk was judged, dead-lettered with its reason, and changed nothing (the hash below).
    assert.ok(junk, 'the junk update was sent');
    await junk;
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(Stream.deadLetter);
    const reasons: string[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) reasons.push((await jsm.streams.getMessage(Stream.deadLetter, { seq }))?.header?.get(Header.Error) ?? '');
    assert.ok(reasons.some((r) => /delta round 0 for mnist-mlp\.18\.federated\.aggregator on its delta port: it does not decode/.test(r)), reasons.join('\n'));

    // A plain run under the same name after it: the federated run's extra VNodes (6..20) leave no owner or state behind.
    const plain = await dcnr(['train', '--nats', ns.url, '--pnodes', '0', '--store', store, '--steps', '20', '--batch', '16', '--json']);
    assert.is(plain.code, 0, plain.stderr.slice(-3000));
    const buckets = await openBuckets(nc);
    const left = [];
    for (let i = 6; i < 21; i++) {
      if ((await buckets.owners.get(ownerKey('mnist-mlp', i)))?.operation === 'PUT') left.push(`owner ${i}`);
      if ((await buckets.state.get(stateMetaKey('mnist-mlp', i)))?.operation === 'PUT') left.push(`state ${i}`);
    }
    assert.equal(left, []);
  } finally {
    await cleanup(ns, nc);
  }
});

test('the same federated run on two PNodes ends with the same paramsHash', async () => {
  assert.ok(hash, 'the first test ran');
  const run = await dcnr(['train', '--pnodes', '2', '--store', join(dir, 'two', 'store'), ...args]);
  assert.is(run.code, 0, run.stderr.slice(-3000));
  assert.is(run.json!.paramsHash, hash);
  assert.ok(run.json!.replicasIdentical);
});

test('a run that is not whole rounds, or an unknown compression, is refused before anything starts', async () => {
  const partial = await dcnr(['train', '--replicas', '2', '--sync-every', '7', '--steps', '30', '--store', join(dir, 'x')]);
  assert.is(partial.code, 2);
  assert.match(partial.stderr, /--steps 30 is not a whole number of rounds of --sync-every 7/);
  const gzip = await dcnr(['train', '--replicas', '2', '--compress', 'gzip', '--steps', '50', '--store', join(dir, 'x')]);
  assert.is(gzip.code, 2);
  assert.match(gzip.stderr, /federation\.compress: .*gzip/);
});

test.run();
