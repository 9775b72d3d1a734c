/**
 * `dcnr generate --deployment NAME [--nats URL | --store DIR] [--count N] [--temperature T] [--seed S] [--prompt TEXT] [--json]`:
 * samples from a trained language model's committed parameters (trainer/generate.ts),
 * each starting with `--prompt` if given.
 * With `--store`, the run `dcnr train` left there is read through a private nats-server
 * started on it (and stopped after).
 */
import '../actors/index.js';
import { UsageError, openDeployment, type OpenedDeployment } from '../cluster/open-deployment.js';
import { createKernels } from '../runtime/kernels/index.js';
import { isTextDataset } from '../runtime/model.js';
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
  if (!Number.isFinite(opts.temperature) || opts.temperature < 0 || opts.temperature > 10) fail(`--temperature must be a number in [0, 10], got ${opts.temperature}`);
  let opened: OpenedDeployment | undefined;
  let error: { message: string; code: number } | undefined;
  try {
    opened = await openDeployment({ ...opts, client: 'dcnr-generate', hint: 'train first: dcnr train --model names-gpt' });
    const { record, model, store } = opened;
    if (!isTextDataset(record.spec)) throw new UsageError(`${opts.deployment} is trained on ${record.spec.dataset}, not text: generate samples language models (e.g. names-gpt)`);
    const data = loadTrainingData(model).text!;
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
    error = { message: (err as Error).message, code: err instanceof UsageError ? 2 : 1 };
  } finally {
    await opened?.close();
  }
  // After the private nats-server is stopped: fail() exits at once.
  if (error) fail(error.message, error.code);
}
