/** The text datasets on their real data: the @stdlib name lists and files written here. */
import { mkdtempSync, mkdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  BOUNDARY_ID, MAX_TEXT_FILE_BYTES, bigramEvalLoss, decode, encode, isInTrainingSet, loadNames, loadTextDataset,
  loadTextFile, textEvalBatches, textTrainingBatch, type TextDataset,
} from './text.js';

const dir = mkdtempSync(join(tmpdir(), 'dcnr-text-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
let files = 0;
/** A file in the temporary folder with these bytes (a string is written as UTF-8). */
function tempFile(content: string | Uint8Array): string {
  const path = join(dir, `f${files++}.txt`);
  writeFileSync(path, content);
  return path;
}

/** Where `needle` occurs in `stream`, or -1. */
function indexOf(stream: Uint16Array, needle: ArrayLike<number>): number {
  outer: for (let s = 0; s + needle.length <= stream.length; s++) {
    for (let i = 0; i < needle.length; i++) if (stream[s + i] !== needle[i]) continue outer;
    return s;
  }
  return -1;
}

const names = suite('loadNames');
names('both lists: 8,849 names, 19 with a character outside a-z dropped, 427 duplicates, 8,403 kept', () => {
  const d = loadNames();
  assert.equal(d.counts, { read: 8849, dropped: 19, duplicates: 427 });
  assert.is(d.examples.train.length + d.examples.validation.length, 8403);
  assert.is(d.name, 'names');
  assert.is(d.kind, 'text');
  assert.is(d.vocab.join(''), '.abcdefghijklmnopqrstuvwxyz');
  assert.is(d.maxLength, 13);
  for (const e of [...d.examples.train, ...d.examples.validation]) assert.match(e, /^[a-z]+$/);
});
names('the split is fixed (90/10 from SPLIT_SEED) and disjoint, and the streams hold exactly its examples', () => {
  const d = loadNames();
  assert.is(d.examples.train.length, 7563);
  assert.is(d.examples.validation.length, 840);
  // Pinned: the same in every process and every run seed.
  assert.equal(d.examples.train.slice(0, 4), ['archaimbaud', 'marlene', 'hatty', 'tanney']);
  const train = new Set(d.examples.train);
  assert.is(train.size, d.examples.train.length);
  assert.ok(d.examples.validation.every((v) => !train.has(v)), 'no validation name is a training name');
  assert.is(decode(d, d.train), `.${d.examples.train.join('.')}.`);
  assert.is(decode(d, d.validation), `.${d.examples.validation.join('.')}.`);
});
names.run();

const textFile = suite('loadTextFile');
textFile('one example per line: \\r\\n, blank and whitespace-only lines and a BOM are tolerated; lines kept as written', () => {
  const d = loadTextFile(tempFile('\uFEFFalpha\r\n\r\n  \nbeta gamma\r\n🙂x\n\n'));
  assert.is(d.name, `text:${d.name.slice(5)}`);
  assert.equal([...d.examples.train, ...d.examples.validation].sort(), ['alpha', 'beta gamma', '🙂x']);
  assert.is(d.examples.validation.length, 1, 'at least one validation example');
  assert.is(d.vocab[BOUNDARY_ID], '.');
  assert.ok(d.vocab.includes('🙂'), 'a code point is one character');
  assert.is(d.maxLength, 10);
  assert.equal(d.counts, { read: 3, dropped: 0, duplicates: 0 });
});
textFile('the boundary is \\n when an example holds a "."', () => {
  const d = loadTextFile(tempFile('a.b\ncd\n'));
  assert.is(d.vocab[BOUNDARY_ID], '\n');
  assert.equal(d.vocab, ['\n', '.', 'a', 'b', 'c', 'd']);
});
textFile('the same file gives the same split', () => {
  const text = Array.from({ length: 50 }, (_, i) => `line ${i}`).join('\n');
  const a = loadTextFile(tempFile(text));
  const b = loadTextFile(tempFile(text));
  assert.equal(a.examples, b.examples);
  assert.is(a.examples.validation.length, 5);
});
textFile('every bad file is an Error naming the path and the reason', () => {
  const fails = (path: string, reason: RegExp) => {
    try {
      loadTextFile(path);
    } catch (err) {
      assert.instance(err, Error);
      const message = (err as Error).message;
      console.log(`    ${message.replace(dir, '$TMP')}`);
      assert.ok(message.startsWith(`text:${path}: `), message);
      assert.match(message, reason);
      return;
    }
    assert.unreachable(`${path} loaded`);
  };
  fails(join(dir, 'missing.txt'), /no such file/);
  const sub = join(dir, 'sub');
  mkdirSync(sub);
  fails(sub, /is a directory/);
  fails(tempFile(Uint8Array.from([...Buffer.from('ok\nfine\n'), 0x61, 0xff, 0x62, 0x0a, 0x63])), /not valid UTF-8 .*line 3/);
  fails(tempFile('only one\n\n   \n'), /: 1 example \(non-blank lines\); at least 2 are needed/);
  fails(tempFile(''), /: 0 examples/);
  fails(tempFile(`short\r\n\r\n${'x'.repeat(257)}\r\nok\r\n`), /line 3 has 257 characters, over the limit of 256/);
  loadTextFile(tempFile(`${'x'.repeat(256)}\nok`)); // 256 is allowed
  const many = Array.from({ length: 300 }, (_, i) => String.fromCodePoint(0x100 + i));
  fails(tempFile(`${many.slice(0, 150).join('')}\n${many.slice(150).join('')}\n`), /300 distinct characters, over the limit of 255/);
  loadTextFile(tempFile(`${many.slice(0, 150).join('')}\n${many.slice(150, 255).join('')}\n`)); // 255 is allowed
  const big = tempFile('a\nb\n');
  truncateSync(big, MAX_TEXT_FILE_BYTES + 1); // sparse: nothing is written
  fails(big, /is 50\.0 MiB, over the limit of 50 MiB/);
});
textFile.run();

const dataset = suite('loadTextDataset');
dataset('names, text:PATH, and nothing else', () => {
  assert.is(loadTextDataset('names'), loadNames());
  const path = tempFile('one\ntwo\n');
  assert.is(loadTextDataset(`text:${path}`).name, `text:${path}`);
  assert.throws(() => loadTextDataset('mnist'), /unknown text dataset "mnist": expected names or text:PATH/);
  assert.throws(() => loadTextDataset('text:'), /text:PATH: the path is empty/);
});
dataset.run();

const training = suite('textTrainingBatch');
training('a pure function of (seed, seq): the same twice, different across seq and seed', () => {
  const d = loadNames();
  const a = textTrainingBatch(d, 1, 5, 8, 16);
  assert.equal(a, textTrainingBatch(d, 1, 5, 8, 16));
  assert.not.equal(a.x, textTrainingBatch(d, 1, 6, 8, 16).x);
  assert.not.equal(a.x, textTrainingBatch(d, 2, 5, 8, 16).x);
  assert.equal(textTrainingBatch(d, 1, 5, 3, 16).x, a.x.subarray(0, 3 * 16), 'row r does not depend on batch');
});
training('each row is a window of the train stream and its targets are the inputs shifted by one', () => {
  const d = loadNames();
  const T = 16;
  const { x, t, n } = textTrainingBatch(d, 3, 0, 8, T);
  assert.is(n, 8);
  assert.is(x.length, 8 * T);
  for (let r = 0; r < n; r++) {
    const row = x.subarray(r * T, (r + 1) * T);
    const next = t.subarray(r * T, (r + 1) * T);
    assert.equal(next.subarray(0, T - 1), row.subarray(1));
    assert.ok(indexOf(d.train, [...row, next[T - 1]]) >= 0, `row ${r} is in the train stream`);
  }
});
training('bad arguments are clear errors', () => {
  const d = loadNames();
  assert.throws(() => textTrainingBatch(d, 1, -1, 8, 16), /seq must be an integer in \[0, /);
  assert.throws(() => textTrainingBatch(d, 1, 0, 0, 16), /batch must be an integer in \[1, /);
  assert.throws(() => textTrainingBatch(d, 1, 0, 8, 1.5), /context must be an integer/);
  const tiny = loadTextFile(tempFile('ab\ncd\n'));
  assert.throws(() => textTrainingBatch(tiny, 1, 0, 8, 4), /context 4 needs at least 5 tokens in the train stream, which has 4/);
  assert.is(textTrainingBatch(tiny, 1, 0, 8, 3).n, 8);
});
training.run();

const evaluation = suite('textEvalBatches');
evaluation('non-overlapping windows from the start of the validation stream; the partial last window dropped', () => {
  const d = loadNames();
  for (const T of [16, 32]) {
    const { x, t, n } = textEvalBatches(d, T);
    const targets = d.validation.length - 1;
    assert.is(n, Math.floor(targets / T));
    assert.ok(targets - n * T < T);
    assert.equal(x, Float32Array.from(d.validation.subarray(0, n * T)));
    assert.equal(t, Float32Array.from(d.validation.subarray(1, n * T + 1)));
  }
  assert.equal(textEvalBatches(d, 16), textEvalBatches(d, 16));
});
evaluation.run();

const baselines = suite('bigramEvalLoss');
baselines('by hand: train ".ab.", validation ".ab."', () => {
  const d = loadTextFile(tempFile('ab\nab\n'));
  // Bigram P(a|.) = P(b|a) = P(.|b) = (1+1)/(1+3); unigram (1+1)/(3+3) each; V = 3.
  const b = bigramEvalLoss(d, 1);
  assert.ok(Math.abs(b.bigram - Math.log(2)) < 1e-12, `${b.bigram}`);
  assert.ok(Math.abs(b.unigram - Math.log(3)) < 1e-12, `${b.unigram}`);
  assert.is(b.uniform, Math.log(3));
  assert.is(b.targets, 3);
  assert.is(bigramEvalLoss(d, 2).targets, 2, 'the targets of textEvalBatches: one window of 2');
});
baselines('names: bigram < unigram < uniform = ln 27, measured on the eval windows', () => {
  const d = loadNames();
  for (const T of [8, 16, 32]) {
    const b = bigramEvalLoss(d, T);
    console.log(`    names context ${T}: bigram ${b.bigram.toFixed(4)}, unigram ${b.unigram.toFixed(4)}, uniform ${b.uniform.toFixed(4)} nats over ${b.targets} targets`);
    assert.is(b.targets, textEvalBatches(d, T).n * T);
    assert.ok(b.bigram < b.unigram && b.unigram < b.uniform, JSON.stringify(b));
    assert.ok(Math.abs(b.uniform - Math.log(27)) < 1e-12);
  }
});
baselines.run();

const codec = suite('encode, decode, isInTrainingSet');
codec('encode and decode are inverse; the boundary is id 0', () => {
  const d = loadNames();
  assert.equal(encode(d, '.emma.'), [0, 5, 13, 13, 1, 0]);
  assert.is(decode(d, encode(d, '.emma.')), '.emma.');
  assert.is(decode(d, d.train.subarray(0, 13)), '.archaimbaud.');
});
codec('a character or id outside the vocabulary is a clear error', () => {
  const d: TextDataset = loadNames();
  assert.throws(() => encode(d, 'Emma'), /names: "E" \(U\+0045\) at character 0 is not in the vocabulary/);
  assert.throws(() => decode(d, [0, 27]), /names: token id 27 at position 1 is not in \[0, 27\)/);
  assert.throws(() => decode(d, [0.5]), /token id 0.5 at position 0/);
});
codec('isInTrainingSet: exactly the training examples', () => {
  const d = loadNames();
  assert.ok(isInTrainingSet(d, d.examples.train[0]));
  assert.not.ok(isInTrainingSet(d, d.examples.validation[0]), 'a validation name is not');
  assert.not.ok(isInTrainingSet(d, d.examples.train[0].toUpperCase()));
  assert.not.ok(isInTrainingSet(d, 'zzzq'));
});
codec.run();
