/**
 * `dcnr generate --deployment NAME [--nats URL | --store DIR] [--count N] [--temperature T] [--seed S] [--prompt TEXT] [--json]`:
 * samples from a trained language model's committed parameters (trainer/generate.ts),
 * each starting with `--prompt` if given.
 * With `--store`, the run `dcnr train` left there is read through a private nats-server
 * started on it (and stopped after).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import '../actors/index.js';
import { startPrivateNats } from '../cluster/local-cluster.js';
import type { NatsServer } from '../cluster/nats-server.js';
import { connectNats } from '../cluster/process.js';
import { openBuckets, readDeployment } from '../runtime/cluster-state.js';
import { createKernels } from '../runtime/kernels/index.js';
import { isTextDataset, resolveModel } from '../runtime/model.js';
import { stateAuthOf } from '../runtime/security/verifier.js';
import { chunkBytesFor, StateStore } from '../runtime/state-store.js';
import { loadTrainingData } from '../trainer/data.js';
import { loadAllTensors, paramsHash } from '../trainer/evaluate.js';
import { generate } from '../trainer/generate.js';
import { fail, printResult } from './output.js';

export interface GenerateCliOptions {
  deployment: string;
  nats?: string;
  store?: string;
  count: number;
  temperature: number;
  seed: number;
  /** Text every sample starts with. @default '' */
  prompt?: string;
  json: boolean;
}

export async function generateCommand(opts: GenerateCliOptions): Promise<void> {
  if (opts.nats && opts.store) fail('give --nats URL (a running cluster) or --store DIR (a finished run), not both');
  if (!Number.isFinite(opts.temperature) || opts.temperature < 0 || opts.temperature > 10) fail(`--temperature must be a number in [0, 10], got ${opts.temperature}`);
  let server: NatsServer | undefined;
  let nc: NatsConnection | undefined;
  try {
    let url = opts.nats;
    if (!url) {
      const dir = resolve(opts.store ?? '.dcnr/store');
      if (!existsSync(dir)) fail(`--store ${dir}: no such directory (train first: dcnr train --model names-gpt)`);
      server = (await startPrivateNats(dir)).server;
      url = server.url;
    }
    nc = await connectNats(url, 'dcnr-generate').catch((err) => fail(err.message));
    const buckets = await openBuckets(nc);
    const record = await readDeployment(buckets.deployments, opts.deployment);
    if (!record) fail(`no deployment named ${JSON.stringify(opts.deployment)} at ${url}`);
    if (!isTextDataset(record.spec)) fail(`${opts.deployment} is trained on ${record.spec.dataset}, not text: generate samples language models (e.g. names-gpt)`);
    const model = resolveModel(record.spec, { shapes: record.shapes });
    const data = loadTrainingData(model).text!;
    const store = new StateStore(buckets.state, { chunkBytes: chunkBytesFor(nc), auth: await stateAuthOf(nc) });
    const tensors = await loadAllTensors(store, model);
    const kernels = await createKernels();
    const samples = await generate(kernels, model, tensors, data, { count: opts.count, temperature: opts.temperature, seed: opts.seed, prompt: opts.prompt });
    const novel = samples.filter((s) => !s.inTrainingSet).length;
    const result = {
      deployment: opts.deployment,
      paramsHash: paramsHash(model, tensors),
      samples: samples.map((s) => s.text),
      novel,
      temperature: opts.temperature,
      seed: opts.seed,
      ...(opts.prompt ? { prompt: opts.prompt } : {}),
    };
    printResult(result, opts.json, () =>
      [...samples.map((s) => `${s.text}${s.inTrainingSet ? '' : '   (new)'}`), '', `${novel} of ${samples.length} not in the training set; paramsHash ${result.paramsHash}`].join('\n'),
    );
  } catch (err) {
    fail((err as Error).message, 1);
  } finally {
    await nc?.close().catch(() => {});
    await server?.stop();
  }
}
