/**
 * `dcnr train` as a user runs it, in real processes: two runs agree bit for bit, and
 * a run SIGKILLed mid-training and resumed ends with exactly the parameters of an
 * uninterrupted one (nothing lost, nothing applied twice), in one process and on a
 * private cluster of two PNodes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { dcnr, type DcnrRun } from './helpers/dcnr.js';
import { tempDir } from './helpers/nats.js';

const ARGS = ['train', '--model', 'mnist-mlp', '--pnodes', '0', '--steps', '150', '--batch', '32', '--seed', '5', '--json'];

const dir = tempDir();
test.after(() => rmSync(dir, { recursive: true, force: true }));

let reference: DcnrRun;

test('two fresh runs print the same paramsHash', async () => {
  reference = await dcnr([...ARGS, '--store', join(dir, 'a')]);
  assert.is(reference.code, 0, reference.stderr);
  const again = await dcnr([...ARGS, '--store', join(dir, 'b')]);
  assert.is(again.code, 0, again.stderr);
  for (const field of ['model', 'steps', 'batch', 'pnodes', 'samplesPerSec', 'finalLoss', 'testAccuracy', 'paramsHash', 'kernelMode', 'durationMs']) {
    assert.ok(field in reference.json!, `JSON has ${field}`);
  }
  assert.match(reference.json!.paramsHash, /^[0-9a-f]{64}$/);
  assert.is(again.json!.paramsHash, reference.json!.paramsHash);
  assert.ok(reference.json!.testAccuracy > 0.8, `accuracy ${reference.json!.testAccuracy}`);
});

test('SIGKILL mid-run, then --resume: same paramsHash as the uninterrupted run', async () => {
  const store = join(dir, 'killed');
  // Non-TTY progress prints a line every 10%: kill once 70% is reported. (A resumed run
  // starts at the first VNode's committed watermark, feeds being in memory only: killed
  // earlier, it may have committed none yet, and the resume — rightly — starts at 0.)
  const killed = await dcnr([...ARGS, '--store', store], /train: (1[0-4]\d)\/150 steps/);
  assert.is(killed.signal, 'SIGKILL', `killed by SIGKILL (stderr: ${killed.stderr.slice(-500)})`);
  assert.is(killed.json, undefined);
  const resumed = await dcnr([...ARGS, '--store', store, '--resume']);
  assert.is(resumed.code, 0, resumed.stderr);
  assert.ok(resumed.json!.resumedFrom > 0 && resumed.json!.resumedFrom < 150, `resumed from ${resumed.json!.resumedFrom}`);
  assert.is(resumed.json!.paramsHash, reference.json!.paramsHash);
});

test('--pnodes 2: SIGKILL the train process mid-run (its cluster dies with it), then --resume: same paramsHash as an uninterrupted --pnodes 2 run', async () => {
  const CLUSTER = ARGS.map((a, i) => (ARGS[i - 1] === '--pnodes' ? '2' : a));
  const uninterrupted = await dcnr([...CLUSTER, '--store', join(dir, 'cluster-ref')]);
  assert.is(uninterrupted.code, 0, uninterrupted.stderr.slice(-2000));
  assert.is(uninterrupted.json!.pnodes, 2);
  const store = join(dir, 'cluster-killed');
  const killed = await dcnr([...CLUSTER, '--store', store], /train: (6\d|[7-9]\d|1[0-4]\d)\/150 steps/);
  assert.is(killed.signal, 'SIGKILL', `killed by SIGKILL (stderr: ${killed.stderr.slice(-500)})`);
  const resumed = await dcnr([...CLUSTER, '--store', store, '--resume']);
  assert.is(resumed.code, 0, resumed.stderr.slice(-3000));
  assert.ok(resumed.json!.resumedFrom > 0 && resumed.json!.resumedFrom < 150, `resumed from ${resumed.json!.resumedFrom}`);
  assert.is(resumed.json!.paramsHash, uninterrupted.json!.paramsHash);
});

test('--resume with different arguments is refused with a clear error', async () => {
  const run = await dcnr([...ARGS.map((a) => (a === '5' ? '6' : a)), '--store', join(dir, 'a'), '--resume']);
  assert.is.not(run.code, 0);
  assert.match(run.stderr, /--resume: the stored run has seed=5, this command says 6/);
});

test('bad arguments give clear errors', async () => {
  const r1 = await dcnr(['train', '--steps', 'many']);
  assert.is.not(r1.code, 0);
  assert.match(r1.stderr, /expected an integer >= 1/);
  const r2 = await dcnr(['train', '--model', '/nonexistent.json', '--store', join(dir, 'x')]);
  assert.is.not(r2.code, 0);
  assert.match(r2.stderr, /neither a built-in model/);
});

test.run();
