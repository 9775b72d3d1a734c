/**
 * `dcnr export --deployment NAME [--nats URL | --store DIR] [--version latest|STEP] --out FILE.safetensors [--json]`:
 * a deployment's committed parameters (or a served version's) as a safetensors file (trainer/export.ts), which
 * `dcnr train --init FILE` starts from and other tools read (README, "Export").
 */
import { renameSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import '../actors/index.js';
import { openDeployment, UsageError, type OpenedDeployment } from '../cluster/open-deployment.js';
import { exportSafetensors, readParameters } from '../trainer/export.js';
import { fail, printResult } from './output.js';

export interface ExportCliOptions {
  deployment: string;
  nats?: string;
  store?: string;
  out: string;
  /** `latest` or a served version's step. */
  version: string;
  json: boolean;
}

export async function exportCommand(opts: ExportCliOptions): Promise<void> {
  const out = resolve(opts.out);
  let opened: OpenedDeployment | undefined;
  let error: { message: string; code: number } | undefined;
  try {
    opened = await openDeployment({ ...opts, client: 'dcnr-export', hint: 'train first: dcnr train --store DIR' });
    const { record, model, store } = opened;
    const version = opts.version === 'latest' ? 'latest' : Number(opts.version);
    if (version !== 'latest' && (!Number.isSafeInteger(version) || version < 1)) throw new UsageError(`--version must be latest or a served version's step, got ${JSON.stringify(opts.version)}`);
    const params = await readParameters(store, model, version, record.generation);
    const file = exportSafetensors(model, params, { deployment: opts.deployment, seed: record.seed });
    // Whole or not at all: a reader never sees half a file under the name.
    const tmp = `${out}.${process.pid}.tmp`;
    writeFileSync(tmp, file.bytes);
    renameSync(tmp, out);
    const result = { deployment: opts.deployment, out, tensors: file.tensors, bytes: file.bytes.byteLength, paramsHash: file.paramsHash, version: params.version, ...(params.steps !== undefined ? { steps: params.steps } : {}) };
    printResult(result, opts.json, () =>
      [`wrote ${out}`, `tensors      ${result.tensors} (${model.vnodes.length} VNodes)`, `bytes        ${result.bytes}`, `steps        ${params.steps ?? '-'}`, `paramsHash   ${result.paramsHash}`].join('\n'),
    );
  } catch (err) {
    error = { message: (err as Error).message, code: err instanceof UsageError ? 2 : 1 };
  } finally {
    await opened?.close();
  }
  if (error) fail(error.message, error.code);
}
