/**
 * `POST /v1/generate` on a language model (names-gpt, really trained by `dcnr train`):
 * the text of `generate()` (trainer/generate.ts) and of `dcnr generate --prompt` for the
 * same seed, prompt and temperature; each validation error; concurrent samples batched
 * per token on row-exact kernels with the same texts, in fewer forwards.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadTextDataset } from '../runtime/data/text.js';
import { createKernels } from '../runtime/kernels/index.js';
import { generate } from '../trainer/generate.js';
import { dcnr } from '../test/helpers/dcnr.js';
import type { TrainedDeployment } from '../test/helpers/trained.js';
import { createLocalBackend, type LocalBackend } from './local-backend.js';
import { startServer, type ServeServer } from './http.js';
import { call, serveTrained, type Served, metric, parsePrometheus, recording, scaled, twoVersions } from '../test/helpers/serve.js';

let served: Served;
let run: TrainedDeployment;
let backend: LocalBackend;
let server: ServeServer;

test.before(async () => {
  served = await serveTrained('names-gpt', ['--steps', '24', '--batch', '8', '--seed', '3']);
  ({ run, backend, server } = served);
});
test.after(() => served?.stop());

const names = () => loadTextDataset('names');

test('the text of generate() for the same seed, prompt and temperature; one version for the whole sample', async () => {
  for (const [seed, prompt, temperature] of [[7, '', 1], [7, 'em', 0.5], [11, 'ka', 1.5], [3, 'b', 0]] as const) {
    const r = await call(server.url, 'POST', '/v1/generate', { seed, prompt, temperature });
    assert.is(r.status, 200, JSON.stringify(r.json));
    const [want] = await generate(backend.kernels, run.model, run.tensors, names(), { count: 1, seed, prompt, temperature });
    assert.is(r.json.text, want.text, `seed ${seed}, prompt ${JSON.stringify(prompt)}, temperature ${temperature}`);
    assert.ok(r.json.text.startsWith(prompt));
    assert.equal(r.json, { text: want.text, paramsVersion: backend.version().id, paramsHash: run.result.paramsHash, seed });
  }
});

test('one version for every token of a sample, the one the answer names', async () => {
  const other = scaled(run.tensors, 0.5);
  const v1 = await createLocalBackend({ model: run.model, tensors: run.tensors, versionId: 'v1' });
  const v2 = await createLocalBackend({ model: run.model, tensors: other, versionId: 'v2' });
  const s = await startServer({ backend: twoVersions(v1, v2) });
  try {
    const seen = new Set<string>();
    let differ = 0;
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const r = await call(s.url, 'POST', '/v1/generate', { seed, temperature: 1 });
      seen.add(r.json.paramsVersion);
      const [mine] = await generate(backend.kernels, run.model, r.json.paramsVersion === 'v1' ? run.tensors : other, names(), { count: 1, seed, temperature: 1 });
      const [theirs] = await generate(backend.kernels, run.model, r.json.paramsVersion === 'v1' ? other : run.tensors, names(), { count: 1, seed, temperature: 1 });
      assert.is(r.json.text, mine.text, `seed ${seed} on ${r.json.paramsVersion}`);
      if (mine.text !== theirs.text) differ++;
    }
    assert.equal([...seen].sort(), ['v1', 'v2']);
    assert.ok(differ > 0, 'the two versions write differently');
  } finally {
    await s.close();
  }
});

test('the text of `dcnr generate --prompt --seed --count 1`', async () => {
  const cli = await dcnr(['generate', '--deployment', 'names-gpt', '--store', run.store, '--count', '1', '--seed', '5', '--prompt', 'ma', '--temperature', '0.8', '--json']);
  assert.is(cli.code, 0, cli.stderr);
  const r = await call(server.url, 'POST', '/v1/generate', { seed: 5, prompt: 'ma', temperature: 0.8 });
  assert.is(r.json.text, cli.json!.samples[0]);
  assert.is(r.json.paramsHash, cli.json!.paramsHash);
  const plain = await dcnr(['generate', '--deployment', 'names-gpt', '--store', run.store, '--count', '1', '--seed', '9', '--json']);
  assert.is((await call(server.url, 'POST', '/v1/generate', { seed: 9 })).json.text, plain.json!.samples[0], 'no prompt, default temperature');
  const bad = await dcnr(['generate', '--deployment', 'names-gpt', '--store', run.store, '--prompt', 'Ma']);
  assert.is.not(bad.code, 0);
  assert.match(bad.stderr, /"M" \(U\+004D\) at character 0 is not in the vocabulary/);
});

test('maxTokens bounds the new tokens; no seed: a seed is drawn and returned, and gives the same text again', async () => {
  const one = await call(server.url, 'POST', '/v1/generate', { prompt: 'an', maxTokens: 1, temperature: 0, seed: 1 });
  assert.is(one.status, 200);
  assert.ok(one.json.text.length <= 3 && one.json.text.startsWith('an'), one.json.text);
  const drawn = await call(server.url, 'POST', '/v1/generate', {});
  assert.is(drawn.status, 200);
  assert.ok(Number.isSafeInteger(drawn.json.seed));
  assert.is((await call(server.url, 'POST', '/v1/generate', { seed: drawn.json.seed })).json.text, drawn.json.text);
});

test('every bad generate request gets 400/404 and a one-line reason', async () => {
  const cases: Array<[string, unknown, number, RegExp]> = [
    ['/v1/generate', 'seed=1', 400, /^the body is not JSON/],
    ['/v1/generate', { prompt: 'a', topK: 3 }, 400, /^unknown field "topK"; the fields are prompt, maxTokens, temperature, seed$/],
    ['/v1/generate', { prompt: 5 }, 400, /^prompt must be a string, got 5$/],
    ['/v1/generate', { prompt: 'Emma' }, 400, /^prompt: names: "E" \(U\+0045\) at character 0 is not in the vocabulary$/],
    ['/v1/generate', { prompt: 'em ma' }, 400, /^prompt: names: " " \(U\+0020\) at character 2 is not in the vocabulary$/],
    ['/v1/generate', { prompt: 'em.ma' }, 400, /^prompt: names: the prompt's character 2 is the boundary ".", which ends an example$/],
    ['/v1/generate', { prompt: 'a'.repeat(257) }, 400, /^prompt has 257 characters; at most 256 are accepted$/],
    ['/v1/generate', { maxTokens: 0 }, 400, /^maxTokens must be an integer from 1 to 256, got 0$/],
    ['/v1/generate', { maxTokens: 257 }, 400, /^maxTokens must be an integer from 1 to 256, got 257$/],
    ['/v1/generate', { maxTokens: 2.5 }, 400, /^maxTokens must be an integer/],
    ['/v1/generate', { maxTokens: '9' }, 400, /^maxTokens must be an integer .*, got "9"$/],
    ['/v1/generate', { temperature: -0.1 }, 400, /^temperature must be a number in \[0, 10\], got -0.1$/],
    ['/v1/generate', { temperature: 10.5 }, 400, /^temperature must be a number in \[0, 10\]/],
    ['/v1/generate', { temperature: 'hot' }, 400, /^temperature must be a number in \[0, 10\], got "hot"$/],
    ['/v1/generate', { seed: -1 }, 400, /^seed must be an integer from 0 to 2\^53 - 1, got -1$/],
    ['/v1/generate', { seed: 1.5 }, 400, /^seed must be an integer/],
    ['/v1/generate', { seed: 2 ** 53 }, 400, /^seed must be an integer/],
    ['/v1/predict', { inputs: [[0, 1, 2]] }, 404, /^names-gpt is a language model: POST \/v1\/generate/],
  ];
  for (const [path, body, status, reason] of cases) {
    const r = await call(server.url, 'POST', path, body);
    assert.is(r.status, status, `${path} ${JSON.stringify(body).slice(0, 60)}: ${JSON.stringify(r.json)}`);
    assert.match(r.json.error, reason);
    assert.not.match(r.json.error, /\n/);
  }
});

test('OpenBLAS kernels: concurrent samples are not batched (one row per forward), and each has its own text', async () => {
  const rec = recording(backend);
  const s = await startServer({ backend: rec.backend });
  try {
    const seeds = [1, 2, 3, 4, 5, 6];
    const replies = await Promise.all(seeds.map((seed) => call(s.url, 'POST', '/v1/generate', { seed })));
    for (const [i, r] of replies.entries()) {
      const [want] = await generate(backend.kernels, run.model, run.tensors, names(), { count: 1, seed: seeds[i], temperature: 1 });
      assert.is(r.json.text, want.text);
    }
    for (const c of rec.calls) assert.is(c.input.shape[0], 1);
  } finally {
    await s.close();
  }
});

test('row-exact kernels (js): concurrent samples share forwards per token, with the texts each gives alone', async () => {
  const js = await createLocalBackend({ model: run.model, tensors: run.tensors, kernels: await createKernels('js') });
  const rec = recording(js);
  // a long window: the eight requests all arrive while the first sample waits for company
  const s = await startServer({ backend: rec.backend, windowMs: 200 });
  try {
    const asks = [1, 2, 3, 4, 5, 6, 7, 8].map((seed) => ({ seed, prompt: seed % 2 ? 'ma' : 'jo', temperature: 1 }));
    const replies = await Promise.all(asks.map((a) => call(s.url, 'POST', '/v1/generate', a)));
    let tokens = 0;
    for (const [i, r] of replies.entries()) {
      assert.is(r.status, 200, JSON.stringify(r.json));
      const [want] = await generate(js.kernels, run.model, run.tensors, names(), { count: 1, ...asks[i] });
      assert.is(r.json.text, want.text, `request ${i}`);
      tokens += r.json.text.length - 1; // forwards it needed: one per new token, and one that drew the boundary (unless maxTokens)
    }
    const rows = rec.calls.reduce((n, c) => n + c.input.shape[0], 0);
    assert.ok(rows >= tokens, `${rows} rows forwarded for ${tokens} tokens`);
    assert.ok(rec.calls.length < rows, `${rec.calls.length} forwards for ${rows} rows: batched`);
    for (const c of rec.calls) assert.is(c.input.shape[1], 16, 'every window padded to the context');
    const m = parsePrometheus((await call(s.url, 'GET', '/metrics')).json).samples;
    assert.is(metric(m, 'dcnr_serve_batch_rows_count', { route: 'generate' }), rec.calls.length);
  } finally {
    await s.close();
    await js.close();
  }
});

test.run();
