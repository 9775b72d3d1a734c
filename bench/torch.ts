/**
 * The PyTorch baseline: Debian's python3-torch run through /usr/bin/python3
 * (bench/torch_baseline.py). Every figure is `null` when torch does not import.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./torch_baseline.py', import.meta.url));

export interface TorchInfo {
  version: string;
  threads: number;
  /** Shared libraries with "blas" in their path mapped into the torch process. */
  blas: string[];
}

/** Run one torch_baseline.py command; its JSON answer, or null when torch is absent. */
export function runTorch<T>(args: Array<string | number>, timeoutMs = 600_000): T {
  const r = spawnSync(PYTHON, [SCRIPT, ...args.map(String)], { encoding: 'utf8', timeout: timeoutMs });
  if (r.error) throw new Error(`python3 ${args[0]}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`python3 ${args[0]} exited ${r.status}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as T;
}

let probed: TorchInfo | null | undefined;

/** torch's version, threads and BLAS, or null when `/usr/bin/python3 -c "import torch"` fails. */
export function torchInfo(): TorchInfo | null {
  if (probed !== undefined) return probed;
  const ok = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8', timeout: 120_000 });
  probed = ok.status === 0 ? runTorch<TorchInfo>(['info']) : null;
  return probed;
}

/** A short name for the BLAS torch loaded, e.g. `openblas-pthread` or `reference (libblas)`. */
export function blasName(info: TorchInfo): string {
  const paths = info.blas.join(' ');
  if (/openblas-pthread/.test(paths)) return 'openblas-pthread';
  if (/openblas-openmp/.test(paths)) return 'openblas-openmp';
  if (/openblas/.test(paths)) return 'openblas';
  if (/mkl/.test(paths)) return 'mkl';
  if (/blas/.test(paths)) return 'reference BLAS (slow: install libopenblas0-pthread)';
  return 'none found';
}
