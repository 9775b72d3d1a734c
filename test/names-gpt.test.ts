/**
 * The language model end to end, as a user runs it: `dcnr train --model names-gpt` in
 * one process and on a private cluster of two PNodes gives the same parameters, and
 * `dcnr generate` samples names from them, the same ones twice. A text file the model
 * cannot use is refused before anything is deployed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dcnr } from './helpers/dcnr.js';
import { tempDir } from './helpers/nats.js';

const ARGS = ['train', '--model', 'names-gpt', '--steps', '24', '--batch', '8', '--seed', '3', '--json'];

const dir = tempDir();
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('names-gpt: one process and two PNodes give the same paramsHash; evalLoss is reported, testAccuracy is not', async () => {
  const local = await dcnr([...ARGS, '--pnodes', '0', '--store', join(dir, 'local')]);
  assert.is(local.code, 0, local.stderr.slice(-2000));
  const cluster = await dcnr([...ARGS, '--pnodes', '2', '--store', join(dir, 'cluster')]);
  assert.is(cluster.code, 0, cluster.stderr.slice(-2000));
  assert.match(local.json!.paramsHash, /^[0-9a-f]{64}$/);
  assert.is(cluster.json!.paramsHash, local.json!.paramsHash);
  assert.ok(local.json!.evalLoss > 0 && local.json!.evalLoss < Math.log(27), `evalLoss ${local.json!.evalLoss} below uniform (ln 27)`);
  assert.not.ok('testAccuracy' in local.json!, 'no accuracy for a language model');
});

test('dcnr generate: the same seed gives the same names; the JSON names the parameters', async () => {
  const args = ['generate', '--deployment', 'names-gpt', '--store', join(dir, 'local'), '--count', '5', '--seed', '7', '--json'];
  const a = await dcnr(args);
  assert.is(a.code, 0, a.stderr.slice(-2000));
  const b = await dcnr(args);
  assert.equal(b.json!.samples, a.json!.samples);
  assert.is(a.json!.samples.length, 5);
  for (const s of a.json!.samples) assert.match(s, /^[a-z]*$/, 'letters only: the boundary ends a sample');
  assert.match(a.json!.paramsHash, /^[0-9a-f]{64}$/);
  const other = await dcnr(['generate', '--deployment', 'nope', '--store', join(dir, 'local')]);
  assert.is.not(other.code, 0);
  assert.match(other.stderr, /no deployment named "nope"/);
});

test('a text dataset the model cannot use, or cannot be read, is refused before anything starts', async () => {
  const spec = (dataset: string) => {
    const file = join(dir, `spec-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify({ name: 'txt', dataset, context: 8, vnodes: [{ type: 'layer.embedding', config: { vocab: 5, width: 8, context: 8 } }, { type: 'layer.dense', config: { units: 5 } }, { type: 'loss.softmaxCrossEntropy' }] }));
    return file;
  };
  const missing = await dcnr(['train', '--model', spec(`text:${join(dir, 'absent.txt')}`), '--store', join(dir, 'x')]);
  assert.is.not(missing.code, 0);
  assert.match(missing.stderr, /absent\.txt/);
  const lines = join(dir, 'words.txt');
  writeFileSync(lines, 'abc\nbcd\ncde\nxyz\nqrs\n');
  const wrongVocab = await dcnr(['train', '--model', spec(`text:${lines}`), '--store', join(dir, 'y')]);
  assert.is.not(wrongVocab.code, 0);
  assert.match(wrongVocab.stderr, /the model predicts 5 tokens per position, but text:.* has a vocabulary of \d+/);
  assert.not.match(wrongVocab.stderr, /starting|deploy/i);
});

test.run();
