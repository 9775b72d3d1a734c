/**
 * Data shards of a federated run (docs/federated.md): each replica's data owner holds
 * one file and reads nothing else — raw data never leaves it; only compressed parameter
 * updates do. `dcnr train --replicas R` plays the R owners on one machine: it splits the
 * training split into R disjoint shard files (`writeShards`) and gives each feeder
 * process one (`dcnr feed --shard FILE`). A real owner brings its own file in the same
 * format.
 *
 * Format (version 1): one JSON header line, then the rows' float32 pixels (little-endian)
 * and one uint8 label per row:
 *   {"format":"dcnr-shard","version":1,"dataset":"mnist","replica":r,"replicas":R,"rows":n,"features":784,"classes":10,"sha256":"…"}\n
 * `sha256` covers the bytes after the header line. A file that is not exactly this is
 * refused with one sentence naming what is wrong (invariant 7).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { loadMnist, MNIST_CLASSES, MNIST_FEATURES, type Dataset } from '../runtime/data/mnist.js';
import { createRng, permutation } from '../runtime/rng.js';

const Header = z
  .object({
    format: z.literal('dcnr-shard'),
    version: z.literal(1),
    dataset: z.literal('mnist'),
    replica: z.number().int().min(0),
    replicas: z.number().int().min(1),
    rows: z.number().int().min(1).max(10_000_000),
    features: z.literal(MNIST_FEATURES),
    classes: z.literal(MNIST_CLASSES),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
  })
  .strict()
  .refine((h) => h.replica < h.replicas, 'replica must be below replicas');
export type ShardHeader = z.infer<typeof Header>;

/** A shard's rows as a dataset to draw batches from (its `test` split is empty: evaluation is the coordinator's). */
export interface Shard {
  header: ShardHeader;
  data: Dataset;
}

/** The file of replica `r` of `replicas` in `dir`. */
export const shardFile = (dir: string, r: number, replicas: number) => join(dir, `shard-${r}-of-${replicas}.bin`);

/**
 * Split the training split of `dataset` into `replicas` disjoint shards, by a seeded
 * permutation cut into R near-equal runs (each shard's rows in the permutation's order),
 * and write them to `dir`. Returns the files, replica order.
 */
export function writeShards(dir: string, dataset: string, replicas: number, seed: number): string[] {
  if (dataset !== 'mnist') throw new Error(`federated rounds shard the mnist dataset only for now, not ${dataset} (docs/federated.md)`);
  const all = loadMnist();
  const F = all.features;
  const order = permutation(all.train.n, createRng(`${seed}/federated/shards/${replicas}`));
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (let r = 0; r < replicas; r++) {
    const from = Math.floor((r * all.train.n) / replicas);
    const to = Math.floor(((r + 1) * all.train.n) / replicas);
    const rows = to - from;
    const x = new Float32Array(rows * F);
    const y = new Uint8Array(rows);
    for (let i = 0; i < rows; i++) {
      const row = order[from + i];
      x.set(all.train.x.subarray(row * F, (row + 1) * F), i * F);
      y[i] = all.train.y[row];
    }
    const body = Buffer.concat([Buffer.from(x.buffer, x.byteOffset, x.byteLength), Buffer.from(y)]);
    const header = { format: 'dcnr-shard', version: 1, dataset: 'mnist', replica: r, replicas, rows, features: F, classes: all.classes, sha256: sha(body) } as ShardHeader;
    const file = shardFile(dir, r, replicas);
    writeFileSync(file, Buffer.concat([Buffer.from(JSON.stringify(header) + '\n'), body]));
    files.push(file);
  }
  return files;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Read and check one shard file; `expect` (its replica and their count) must match its header. */
export function readShard(file: string, expect?: { replica: number; replicas: number }): Shard {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read the shard ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  const nl = bytes.indexOf(0x0a);
  if (nl < 0 || nl > 4096) throw new Error(`${file} is not a DCNR shard (no JSON header line)`);
  let json: unknown;
  try {
    json = JSON.parse(bytes.subarray(0, nl).toString('utf8'));
  } catch {
    throw new Error(`${file} is not a DCNR shard (its header line is not JSON)`);
  }
  const parsed = Header.safeParse(json);
  if (!parsed.success) throw new Error(`${file}: not a DCNR shard header: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  const h = parsed.data;
  if (expect && (h.replica !== expect.replica || h.replicas !== expect.replicas)) {
    throw new Error(`${file} is shard ${h.replica} of ${h.replicas}, this feeder is replica ${expect.replica} of ${expect.replicas}`);
  }
  const body = bytes.subarray(nl + 1);
  const want = h.rows * h.features * 4 + h.rows;
  if (body.byteLength !== want) throw new Error(`${file}: ${h.rows} rows need ${want} bytes after the header, it has ${body.byteLength}`);
  if (sha(body) !== h.sha256) throw new Error(`${file}: its bytes do not match the header's sha256 (damaged or edited)`);
  const x = new Float32Array(h.rows * h.features);
  new Uint8Array(x.buffer).set(body.subarray(0, h.rows * h.features * 4));
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) throw new Error(`${file}: pixel ${i} is not a finite number`);
  const y = new Uint8Array(body.subarray(h.rows * h.features * 4));
  const bad = y.findIndex((label) => label >= h.classes);
  if (bad >= 0) throw new Error(`${file}: row ${bad}'s label ${y[bad]} is not below ${h.classes}`);
  const empty = { x: new Float32Array(0), y: new Uint8Array(0), n: 0 };
  return { header: h, data: { features: h.features, classes: h.classes, train: { x, y, n: h.rows }, test: empty } };
}
