/**
 * `dcnr export` and `dcnr train --init`, as a user runs them, in real processes:
 * - a trained mnist-mlp exported to safetensors holds exactly the trained parameters
 *   (same paramsHash), and a numpy-only reader (scripts/safetensors-forward.py, which
 *   parses the file itself and follows the spec in its metadata) reproduces DCNR's own
 *   predictions on held-out digits within 1e-5 (absolute, on probabilities);
 * - `train --init` starts from the file (its starting paramsHash is the exported one),
 *   and the same file and seed give the same parameters twice in one process and on a
 *   private cluster of two PNodes;
 * - export reads a running server too (`--nats`);
 * - a file that is unusable, or does not fit the model, is refused before anything starts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../actors/index.js';
import { createKernels } from '../runtime/kernels/index.js';
import { BUILTIN_MODELS, resolveModel } from '../runtime/model.js';
import { fromNamedTensors } from '../runtime/parameters.js';
import { decodeSafetensors, encodeSafetensors } from '../runtime/safetensors.js';
import { loadTrainingData } from '../trainer/data.js';
import { paramsHash, predict } from '../trainer/evaluate.js';
import { train } from '../trainer/train.js';
import { dcnr, type DcnrRun } from './helpers/dcnr.js';
import { cleanup, setup, tempDir } from './helpers/nats.js';

const reader = fileURLToPath(new URL('../scripts/safetensors-forward.py', import.meta.url));
const PYTHON = '/usr/bin/python3';
/** Absolute, on softmax probabilities: float32 kernels against numpy in float64 (measured: 4.2e-7 at worst over all 2,004 held-out digits). */
const TOLERANCE = 1e-5;
const HELD_ROWS = 300;

const dir = tempDir('dcnr-export-');
test.after(() => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, 'mnist-mlp.safetensors');
const TRAIN = ['train', '--model', 'mnist-mlp', '--pnodes', '0', '--steps', '60', '--batch', '32', '--seed', '3', '--json'];
let trained: DcnrRun;
let exported: DcnrRun;

test('train 60 steps, export: the file holds exactly the trained parameters, with the spec, hash and version in __metadata__', async () => {
  trained = await dcnr([...TRAIN, '--store', join(dir, 'a')]);
  assert.is(trained.code, 0, trained.stderr.slice(-2000));
  exported = await dcnr(['export', '--deployment', 'mnist-mlp', '--store', join(dir, 'a'), '--out', file, '--json']);
  assert.is(exported.code, 0, exported.stderr.slice(-2000));
  const j = exported.json!;
  assert.equal(Object.keys(j).sort(), ['bytes', 'deployment', 'out', 'paramsHash', 'steps', 'tensors', 'version']);
  assert.is(j.deployment, 'mnist-mlp');
  assert.is(j.out, file);
  assert.is(j.tensors, 6);
  assert.is(j.bytes, statSync(file).size);
  assert.is(j.paramsHash, trained.json!.paramsHash, 'the trained parameters, bit for bit');

  const decoded = decodeSafetensors(readFileSync(file));
  const meta = decoded.metadata;
  assert.is(meta.format, 'dcnr-1');
  assert.is(meta.paramsHash, trained.json!.paramsHash);
  assert.is(meta.version, 'latest');
  assert.is(meta.deployment, 'mnist-mlp');
  assert.is(meta.steps, '60');
  assert.is(meta.seed, '3');
  const model = resolveModel(JSON.parse(meta.spec));
  assert.is(paramsHash(model, fromNamedTensors(model, decoded.tensors)), trained.json!.paramsHash, 'the tensors hash as the run did');
  assert.equal(decoded.tensors.map((t) => `${t.name}[${t.shape}]`), ['0.W[784,128]', '0.b[128]', '2.W[128,64]', '2.b[64]', '4.W[64,10]', '4.b[10]']);
});

test(`numpy, reading the file itself, reproduces DCNR's predictions on ${HELD_ROWS} held-out digits within ${TOLERANCE}`, async () => {
  const decoded = decodeSafetensors(readFileSync(file));
  const model = resolveModel(JSON.parse(decoded.metadata.spec));
  const held = loadTrainingData(model).held;
  const x = held.x.slice(0, HELD_ROWS * model.inputFeatures);
  const ours = await predict(await createKernels(), model, fromNamedTensors(model, decoded.tensors), x, HELD_ROWS);

  const inputs = join(dir, 'held.f32');
  const outputs = join(dir, 'numpy.f32');
  writeFileSync(inputs, new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
  const py = spawnSync(PYTHON, [reader, file, inputs, String(HELD_ROWS), outputs], { encoding: 'utf8' });
  assert.is(py.status, 0, `${PYTHON} ${reader} (needs numpy): ${py.stderr || py.error}`);
  assert.equal(JSON.parse(py.stdout.trim()), { rows: HELD_ROWS, outputs: 10, tensors: 6, paramsHash: trained.json!.paramsHash });
  const bytes = readFileSync(outputs);
  const theirs = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  assert.is(theirs.length, ours.length);
  let worst = 0;
  let agree = 0;
  for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i] - theirs[i]));
  const argmax = (a: Float32Array, r: number) => a.subarray(r * 10, r * 10 + 10).reduce((best, v, c, row) => (v > row[best] ? c : best), 0);
  for (let r = 0; r < HELD_ROWS; r++) if (argmax(ours, r) === argmax(theirs, r)) agree++;
  assert.ok(worst <= TOLERANCE, `largest difference ${worst} > ${TOLERANCE}`);
  assert.is(agree, HELD_ROWS, 'the same class for every digit');
  // Not a vacuous comparison: these are a trained model's confident predictions.
  assert.ok(Math.max(...ours) > 0.9, 'some prediction is confident');
});

test('train --init: starts from the exported parameters; the same file and seed give the same parameters, in one process and on 2 PNodes', async () => {
  const INIT = ['train', '--init', file, '--steps', '20', '--batch', '32', '--seed', '3', '--json'];
  // No --model: the spec comes from the file's __metadata__.
  const a = await dcnr([...INIT, '--pnodes', '0', '--store', join(dir, 'b')]);
  assert.is(a.code, 0, a.stderr.slice(-2000));
  assert.is(a.json!.initParamsHash, trained.json!.paramsHash, 'the run started from the exported parameters');
  assert.is.not(a.json!.paramsHash, trained.json!.paramsHash, 'and trained on from there');
  assert.ok(a.json!.evalLoss < trained.json!.evalLoss + 0.1, `evalLoss ${a.json!.evalLoss} from the trained start (${trained.json!.evalLoss}), not from scratch`);
  const again = await dcnr([...INIT, '--model', 'mnist-mlp', '--pnodes', '0', '--store', join(dir, 'c')]);
  assert.is(again.code, 0, again.stderr.slice(-2000));
  assert.is(again.json!.paramsHash, a.json!.paramsHash, '--init + seed: the same parameters again');
  const cluster = await dcnr([...INIT, '--pnodes', '2', '--store', join(dir, 'd')]);
  assert.is(cluster.code, 0, cluster.stderr.slice(-2000));
  assert.is(cluster.json!.initParamsHash, trained.json!.paramsHash);
  assert.is(cluster.json!.paramsHash, a.json!.paramsHash, 'the same parameters on 2 PNodes, which loaded them from KV');
});

test('export --nats: from a running server, while it runs; --nats and --store together are refused', async () => {
  const { ns, nc } = await setup();
  try {
    const model = resolveModel({ ...BUILTIN_MODELS['mnist-mlp'], name: 'live' });
    const run = await train({ nc, model, steps: 10, batch: 16, seed: 4, kernels: await createKernels(), hostLocally: true });
    const out = join(dir, 'live.safetensors');
    const r = await dcnr(['export', '--deployment', 'live', '--nats', ns.url, '--out', out, '--json']);
    assert.is(r.code, 0, r.stderr.slice(-1000));
    assert.is(r.json!.paramsHash, run.paramsHash);
    assert.is(decodeSafetensors(readFileSync(out)).metadata.deployment, 'live');
    const both = await dcnr(['export', '--deployment', 'live', '--nats', ns.url, '--store', dir, '--out', out]);
    assert.is(both.code, 2);
    assert.match(both.stderr, /give --nats URL \(a running cluster\) or --store DIR \(a finished run\), not both/);
  } finally {
    await cleanup(ns, nc);
  }
});

test('an unusable file, or one that does not fit the model, is refused before anything starts', async () => {
  const refused = async (args: string[], message: RegExp) => {
    const store = join(dir, `never-${Math.random().toString(36).slice(2)}`);
    const r = await dcnr([...args, '--pnodes', '0', '--steps', '5', '--store', store]);
    assert.is(r.code, 2, r.stderr.slice(-1000));
    assert.match(r.stderr, message);
    assert.not.ok(existsSync(store), 'no nats-server was started');
  };
  const garbage = join(dir, 'garbage.safetensors');
  writeFileSync(garbage, 'this is not a safetensors file at all');
  await refused(['train', '--init', garbage], /--init .*garbage\.safetensors: not a usable safetensors file: the header size says \d+ bytes, but only \d+ follow it/);
  await refused(['train', '--init', join(dir, 'absent.safetensors')], /--init .*absent\.safetensors: cannot read it \(ENOENT\)/);
  await refused(['train', '--init', file, '--model', 'wide-mlp'], /tensor 0\.W has shape \[784,128\], model wide-mlp needs \[784,2048\]/);
  // A file from elsewhere: tensors only, no spec. Without --model it cannot say which model.
  const decoded = decodeSafetensors(readFileSync(file));
  const bare = join(dir, 'bare.safetensors');
  writeFileSync(bare, encodeSafetensors(decoded.tensors));
  await refused(['train', '--init', bare], /its __metadata__ has no model spec \(not written by dcnr export\): give --model/);
  const renamed = join(dir, 'renamed.safetensors');
  writeFileSync(renamed, encodeSafetensors(decoded.tensors.map((t) => (t.name === '4.b' ? { ...t, name: 'head.b' } : t))));
  await refused(['train', '--init', renamed, '--model', 'mnist-mlp'], /it has tensor head\.b that model mnist-mlp does not have/);
  // With --model, a bare file is fine.
  const ok = await dcnr(['train', '--init', bare, '--model', 'mnist-mlp', '--pnodes', '0', '--steps', '5', '--batch', '32', '--seed', '3', '--store', join(dir, 'e'), '--json']);
  assert.is(ok.code, 0, ok.stderr.slice(-1000));
  assert.is(ok.json!.initParamsHash, trained.json!.paramsHash);
});

test.run();
