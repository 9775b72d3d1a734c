/**
 * Data shards of a federated run (docs/federated.md): each replica's data owner holds
 * one file and reads nothing else — raw data never leaves it; only compressed parameter
 * updates do. `dcnr train --replicas R` plays the R owners on one machine: it splits the
 * training split into R disjoint shard files (`writeShards`) and gives each feeder
 * process one (`dcnr feed --shard FILE`). A real owner brings its own file in the same
 * format.
 *
 * Format (version 1): one JSON header line, then the rows. `sha256` covers the bytes
 * after the header line.
 * - mnist: the rows' float32 pixels (little-endian), then one uint8 label per row:
 *   {"format":"dcnr-shard","version":1,"dataset":"mnist","replica":r,"replicas":R,"rows":n,"features":784,"classes":10,"sha256":"…"}\n
 * - a text dataset (`names`, `text:PATH`): its examples, UTF-8, one per line, under the
 *   whole dataset's vocabulary (every replica must mean the same token by the same id):
 *   {"format":"dcnr-shard","version":1,"dataset":"names","replica":r,"replicas":R,"rows":n,"vocab":[".","a",…],"maxLength":15,"sha256":"…"}\n
 * A file that is not exactly this is refused with one sentence naming what is wrong (invariant 7).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { loadMnist, MNIST_CLASSES, MNIST_FEATURES, type Dataset } from '../runtime/data/mnist.js';
import { createRng, permutation } from '../runtime/rng.js';
import { BOUNDARY_ID, loadTextDataset, textShard, type TextDataset } from '../runtime/data/text.js';

const common = {
  format: z.literal('dcnr-shard'),
  version: z.literal(1),
  replica: z.number().int().min(0),
  replicas: z.number().int().min(1),
  rows: z.number().int().min(1).max(10_000_000),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
};
const MnistHeader = z.object({ ...common, dataset: z.literal('mnist'), features: z.literal(MNIST_FEATURES), classes: z.literal(MNIST_CLASSES) }).strict();
const TextHeader = z
  .object({
    ...common,
    dataset: z.string().regex(/^(names|text:.+)$/, 'dataset must be mnist, names or text:PATH'),
    vocab: z.array(z.string().min(1).max(2)).min(2).max(256),
    maxLength: z.number().int().min(1).max(1024),
  })
  .strict();
const below = (h: { replica: number; replicas: number }) => h.replica < h.replicas;
/** The header's schema by its dataset: mnist's, or a text dataset's (so an error names the field that is wrong, not the union). */
const headerSchema = (json: unknown): z.ZodType<ShardHeader> =>
  (json as { dataset?: unknown } | null)?.dataset === 'mnist' ? MnistHeader.refine(below, 'replica must be below replicas') : TextHeader.refine(below, 'replica must be below replicas');
export type ShardHeader = z.infer<typeof MnistHeader> | z.infer<typeof TextHeader>;

/** A shard's rows as a dataset to draw batches from (no held-out split: evaluation is the coordinator's). */
export type Shard = { header: ShardHeader; kind: 'mnist'; data: Dataset } | { header: ShardHeader; kind: 'text'; text: TextDataset };

/** The file of replica `r` of `replicas` in `dir`. */
export const shardFile = (dir: string, r: number, replicas: number) => join(dir, `shard-${r}-of-${replicas}.bin`);

/**
 * Split the training split of `dataset` into `replicas` disjoint shards, by a seeded
 * permutation cut into R near-equal runs (each shard's rows in the permutation's order),
 * and write them to `dir`. Returns the files, replica order.
 */
export function writeShards(dir: string, dataset: string, replicas: number, seed: number): string[] {
  mkdirSync(dir, { recursive: true });
  const cut = (n: number) => {
    const order = permutation(n, createRng(`${seed}/federated/shards/${replicas}`));
    return Array.from({ length: replicas }, (_, r) => order.slice(Math.floor((r * n) / replicas), Math.floor(((r + 1) * n) / replicas)));
  };
  const write = (r: number, header: Record<string, unknown>, body: Buffer) => {
    const file = shardFile(dir, r, replicas);
    writeFileSync(file, Buffer.concat([Buffer.from(JSON.stringify({ format: 'dcnr-shard', version: 1, ...header, replica: r, replicas, sha256: sha(body) }) + '\n'), body]));
    return file;
  };
  if (dataset !== 'mnist') {
    const text = loadTextDataset(dataset);
    const examples = text.examples.train;
    return cut(examples.length).map((rows, r) => {
      const mine = Array.from(rows, (i) => examples[i]);
      if (mine.some((e) => e.includes('\n'))) throw new Error(`${dataset}: an example holds a line break; a shard keeps one example per line`);
      return write(r, { dataset, rows: mine.length, vocab: text.vocab, maxLength: text.maxLength }, Buffer.from(mine.join('\n'), 'utf8'));
    });
  }
  const all = loadMnist();
  const F = all.features;
  return cut(all.train.n).map((rows, r) => {
    const x = new Float32Array(rows.length * F);
    const y = new Uint8Array(rows.length);
    rows.forEach((row, i) => {
      x.set(all.train.x.subarray(row * F, (row + 1) * F), i * F);
      y[i] = all.train.y[row];
    });
    const body = Buffer.concat([Buffer.from(x.buffer, x.byteOffset, x.byteLength), Buffer.from(y)]);
    return write(r, { dataset: 'mnist', rows: rows.length, features: F, classes: all.classes }, body);
  });
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
  const parsed = headerSchema(json).safeParse(json);
  if (!parsed.success) throw new Error(`${file}: not a DCNR shard header: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  const h = parsed.data;
  if (expect && (h.replica !== expect.replica || h.replicas !== expect.replicas)) {
    throw new Error(`${file} is shard ${h.replica} of ${h.replicas}, this feeder is replica ${expect.replica} of ${expect.replicas}`);
  }
  const body = bytes.subarray(nl + 1);
  const want = 'features' in h ? h.rows * h.features * 4 + h.rows : undefined;
  if (want !== undefined && body.byteLength !== want) throw new Error(`${file}: ${h.rows} rows need ${want} bytes after the header, it has ${body.byteLength}`);
  if (sha(body) !== h.sha256) throw new Error(`${file}: its bytes do not match the header's sha256 (damaged or edited)`);
  if (!('features' in h)) {
    const examples = body.toString('utf8').split('\n');
    if (examples.length !== h.rows) throw new Error(`${file}: the header says ${h.rows} examples, it holds ${examples.length} lines`);
    if (h.vocab[BOUNDARY_ID] !== '.' && h.vocab[BOUNDARY_ID] !== '\n') throw new Error(`${file}: vocab[0] must be the boundary, "." or a line break`);
    return { header: h, kind: 'text', text: textShard(file, h.vocab, h.maxLength, examples) };
  }
  const x = new Float32Array(h.rows * h.features);
  new Uint8Array(x.buffer).set(body.subarray(0, h.rows * h.features * 4));
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) throw new Error(`${file}: pixel ${i} is not a finite number`);
  const y = new Uint8Array(body.subarray(h.rows * h.features * 4));
  const bad = y.findIndex((label) => label >= h.classes);
  if (bad >= 0) throw new Error(`${file}: row ${bad}'s label ${y[bad]} is not below ${h.classes}`);
  const empty = { x: new Float32Array(0), y: new Uint8Array(0), n: 0 };
  return { header: h, kind: 'mnist', data: { features: h.features, classes: h.classes, train: { x, y, n: h.rows }, test: empty } };
}
