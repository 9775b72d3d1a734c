/**
 * Shard files of a federated run: disjoint, together the whole training split, and every
 * file that is not exactly a shard — or is another replica's — refused with a sentence.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { loadMnist } from '../runtime/data/mnist.js';
import { loadNames } from '../runtime/data/text.js';
import { tempDir } from '../test/helpers/nats.js';
import { readShard, writeShards } from './shards.js';

const dir = tempDir('dcnr-shards-');
test.after(() => rmSync(dir, { recursive: true, force: true }));
const rowKey = (x: Float32Array, i: number, F: number, label: number) => createHash('sha1').update(Buffer.from(x.buffer, x.byteOffset + i * F * 4, F * 4)).update(String(label)).digest('hex');

test('three shards are disjoint and together hold every training row exactly once', () => {
  const files = writeShards(dir, 'mnist', 3, 7);
  const all = loadMnist();
  const F = all.features;
  const count = new Map<string, number>();
  for (let i = 0; i < all.train.n; i++) {
    const k = rowKey(all.train.x, i, F, all.train.y[i]);
    count.set(k, (count.get(k) ?? 0) + 1);
  }
  const seen = new Map<string, number>();
  let rows = 0;
  files.forEach((file, r) => {
    const s = readShard(file, { replica: r, replicas: 3 });
    if (s.kind !== 'mnist') throw new Error('an mnist shard');
    rows += s.header.rows;
    for (let i = 0; i < s.header.rows; i++) {
      const k = rowKey(s.data.train.x, i, F, s.data.train.y[i]);
      seen.set(k, (seen.get(k) ?? 0) + 1);
    }
  });
  assert.is(rows, all.train.n);
  // Every distinct row appears as often as in the split (a digit the package ships twice is two rows).
  assert.equal([...seen].sort(), [...count].sort());
});

test("a shard that is damaged, edited, another replica's or not a shard is refused with a sentence", () => {
  const [file] = writeShards(join(dir, 'b'), 'mnist', 2, 1);
  assert.throws(() => readShard(file, { replica: 1, replicas: 2 }), /is shard 0 of 2, this feeder is replica 1 of 2/);
  assert.throws(() => readShard(join(dir, 'none.bin')), /no such file/);
  const bytes = readFileSync(file);
  const edited = Buffer.from(bytes);
  edited[edited.length - 5] ^= 1;
  writeFileSync(join(dir, 'edited.bin'), edited);
  assert.throws(() => readShard(join(dir, 'edited.bin')), /sha256/);
  writeFileSync(join(dir, 'short.bin'), bytes.subarray(0, bytes.length - 1));
  assert.throws(() => readShard(join(dir, 'short.bin')), /need \d+ bytes/);
  writeFileSync(join(dir, 'text.bin'), 'hello world\n');
  assert.throws(() => readShard(join(dir, 'text.bin')), /not a DCNR shard/);
  writeFileSync(join(dir, 'json.bin'), '{"format":"dcnr-shard","version":2}\n');
  assert.throws(() => readShard(join(dir, 'json.bin')), /not a DCNR shard header: version/);
});

test("names shards: disjoint examples that together are the training split, each under the whole vocabulary; a foreign character is refused", () => {
  const files = writeShards(join(dir, 'names'), 'names', 3, 2);
  const all = loadNames();
  const seen: string[] = [];
  files.forEach((file, r) => {
    const s = readShard(file, { replica: r, replicas: 3 });
    if (s.kind !== 'text') throw new Error('a text shard');
    assert.equal(s.text.vocab, all.vocab);
    assert.is(s.text.maxLength, all.maxLength);
    seen.push(...s.text.examples.train);
    // Its stream is its own examples: '.' + e1 + '.' + … (as the whole dataset builds its own).
    assert.is(s.text.train.length, 1 + s.text.examples.train.reduce((n, e) => n + e.length + 1, 0));
  });
  assert.is(new Set(seen).size, seen.length, 'no example in two shards');
  assert.equal([...seen].sort(), [...all.examples.train].sort());
  // An example with a character outside the vocabulary, its sha256 made right: refused by name.
  const [file] = files;
  const text = readFileSync(file, 'utf8');
  const nl = text.indexOf('\n');
  const header = JSON.parse(text.slice(0, nl));
  const body = Buffer.from(text.slice(nl + 1).replace(/^[a-z]+/, 'zoë'), 'utf8');
  writeFileSync(join(dir, 'foreign.bin'), Buffer.concat([Buffer.from(JSON.stringify({ ...header, sha256: createHash('sha256').update(body).digest('hex') }) + '\n'), body]));
  assert.throws(() => readShard(join(dir, 'foreign.bin')), /character "ë", not in the vocabulary/);
});

test.run();
