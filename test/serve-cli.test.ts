/**
 * `dcnr serve` as a user runs it, on a finished run's store: every held-out digit sent
 * through HTTP gets the offline forward's answer (within the OpenBLAS row tolerance of
 * docs/serving.md), so the accuracy over the 2,000 equals the run's testAccuracy; the
 * served version is the run's last (its paramsHash); a pinned version that is not kept
 * is refused by name, and a pinned one is served and exported alike; a language model's /v1/generate gives `dcnr generate`'s text for
 * the same prompt and seed; SIGTERM stops it cleanly.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../actors/index.js';
import { loadModelSpec, resolveModel } from '../runtime/model.js';
import { loadTrainingData } from '../trainer/data.js';
import { dcnr } from './helpers/dcnr.js';
import { tempDir } from './helpers/nats.js';

const bin = fileURLToPath(new URL('../bin/dcnr.js', import.meta.url));
const dir = tempDir();
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** Start `dcnr serve …`; resolves with its URL (its first stdout line) and the process. */
function serve(args: string[]): Promise<{ url: string; child: ChildProcess; stderr: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, 'serve', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (c) => (err += c));
    child.stdout.on('data', (c) => {
      out += c;
      const line = out.split('\n')[0];
      if (out.includes('\n')) resolve({ url: line.trim(), child, stderr: () => err });
    });
    child.on('exit', (code) => reject(new Error(`dcnr serve exited ${code} before it served: ${err.slice(-2000)}`)));
  });
}

async function stop(child: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  child.kill('SIGTERM');
  return exited;
}

const post = async (url: string, body: unknown) => {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
};

test('mnist-mlp: the 2,000 held-out digits through HTTP score the run\'s testAccuracy; the served version is the run\'s last', async () => {
  const store = join(dir, 'mnist');
  const run = await dcnr(['train', '--model', 'mnist-mlp', '--steps', '150', '--batch', '32', '--seed', '2', '--pnodes', '0', '--store', store, '--json']);
  assert.is(run.code, 0, run.stderr.slice(-2000));
  const { url, child, stderr } = await serve(['--deployment', 'mnist-mlp', '--store', store]);
  try {
    const health = await (await fetch(`${url}/healthz`)).json();
    assert.is(health.paramsHash, run.json!.paramsHash, 'the last served version is the run\'s parameters');
    assert.is(health.paramsVersion, '150');

    const model = resolveModel(loadModelSpec('mnist-mlp'));
    const data = loadTrainingData(model);
    const inF = model.inputFeatures;
    const rows = data.held.rows;
    const chunk = 50;
    const probabilities = new Float32Array(rows * 10);
    // Four clients at once: batches of several requests, the answers split back in order.
    const starts = Array.from({ length: Math.ceil(rows / chunk) }, (_, i) => i * chunk);
    for (let i = 0; i < starts.length; i += 4) {
      await Promise.all(
        starts.slice(i, i + 4).map(async (r0) => {
          const n = Math.min(chunk, rows - r0);
          const inputs = Array.from({ length: n }, (_, r) => Array.from(data.held.x.subarray((r0 + r) * inF, (r0 + r + 1) * inF)));
          const { status, body } = await post(`${url}/v1/predict`, { inputs });
          assert.is(status, 200, JSON.stringify(body));
          assert.is(body.paramsVersion, '150');
          body.outputs.forEach((row: number[], r: number) => probabilities.set(row, (r0 + r) * 10));
        }),
      );
    }
    assert.is(data.score(probabilities).testAccuracy, run.json!.testAccuracy, 'accuracy through HTTP = the run\'s testAccuracy');

    // A bad request: a clear 400, and the server goes on.
    const bad = await post(`${url}/v1/predict`, { inputs: [[1, 2, 3]] });
    assert.is(bad.status, 400);
    assert.match(bad.body.error, /784/);
    assert.is((await fetch(`${url}/healthz`)).status, 200);
    assert.is(await stop(child), 0, stderr());
  } finally {
    child.kill('SIGKILL');
  }

  // A pinned version: served and exported alike, not the run's last.
  const v100 = await serve(['--deployment', 'mnist-mlp', '--store', store, '--version', '100']);
  try {
    const health = await (await fetch(`${v100.url}/healthz`)).json();
    assert.is(health.paramsVersion, '100');
    assert.is.not(health.paramsHash, run.json!.paramsHash);
    assert.is(await stop(v100.child), 0, v100.stderr());
    const exported = await dcnr(['export', '--deployment', 'mnist-mlp', '--store', store, '--version', '100', '--out', join(dir, 'v100.safetensors'), '--json']);
    assert.is(exported.code, 0, exported.stderr);
    assert.is(exported.json!.paramsHash, health.paramsHash);
    assert.is(exported.json!.version, '100');
  } finally {
    v100.child.kill('SIGKILL');
  }

  // Pinning a version that is not kept names the ones that are.
  const pinned = await dcnr(['serve', '--deployment', 'mnist-mlp', '--store', store, '--port', '0', '--version', '120']);
  assert.is.not(pinned.code, 0);
  assert.match(pinned.stderr, /no served version 120: served versions are 100, 150/);
});

test('names-gpt: /v1/generate gives dcnr generate\'s text for the same prompt and seed', async () => {
  const store = join(dir, 'names');
  const run = await dcnr(['train', '--model', 'names-gpt', '--steps', '24', '--batch', '8', '--seed', '3', '--pnodes', '0', '--store', store, '--json']);
  assert.is(run.code, 0, run.stderr.slice(-2000));
  const offline = [];
  for (const [prompt, seed] of [['', 4], ['ma', 9]] as const) {
    const g = await dcnr(['generate', '--deployment', 'names-gpt', '--store', store, '--count', '1', '--seed', String(seed), ...(prompt ? ['--prompt', prompt] : []), '--json']);
    assert.is(g.code, 0, g.stderr.slice(-2000));
    offline.push({ prompt, seed, text: g.json!.samples[0] as string });
  }
  const { url, child, stderr } = await serve(['--deployment', 'names-gpt', '--store', store]);
  try {
    for (const o of offline) {
      const { status, body } = await post(`${url}/v1/generate`, { prompt: o.prompt, seed: o.seed });
      assert.is(status, 200, JSON.stringify(body));
      assert.is(body.text, o.text, `prompt ${JSON.stringify(o.prompt)} seed ${o.seed}`);
      assert.is(body.paramsHash, run.json!.paramsHash);
    }
    const wrong = await post(`${url}/v1/predict`, { inputs: [[1]] });
    assert.is(wrong.status, 404);
    assert.match(wrong.body.error, /v1\/generate/);
    assert.is(await stop(child), 0, stderr());
  } finally {
    child.kill('SIGKILL');
  }
});

test.run();
