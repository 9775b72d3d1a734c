/**
 * Runs `dcnr` as a child process, the way a user does, and reads its `--json`
 * contract object (the last stdout line). Also samples a process's peak RSS.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const DCNR_BIN = fileURLToPath(new URL('../bin/dcnr.js', import.meta.url));

/** Run `dcnr …args --json`; resolves with the parsed last line, rejects with stderr's tail. */
export function runDcnr<T>(args: string[], env: Record<string, string> = {}, onSpawn?: (pid: number) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DCNR_BIN, ...args, '--json'], {
      env: { ...process.env, ...env, FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (child.pid) onSpawn?.(child.pid);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code === 0) {
        try {
          return resolve(JSON.parse(last) as T);
        } catch {
          /* fall through */
        }
      }
      reject(new Error(`dcnr ${args.join(' ')} exited ${signal ?? code}: ${err.trim().split('\n').slice(-4).join(' | ')}`));
    });
  });
}

/** Peak resident set size (VmHWM) of a live process in MiB, or null when it is gone. */
export function peakRssMiB(pid: number): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** Current resident set size (VmRSS) of a live process in MiB, or null when it is gone. */
export function rssMiB(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}
