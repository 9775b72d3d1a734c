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

/** A `/proc/<pid>/status` field in MiB (`VmHWM`: peak RSS, `VmRSS`: current), or null when the process is gone. */
function procStatusMiB(pid: number, field: 'VmHWM' | 'VmRSS'): number | null {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** Peak resident set size of a live process in MiB, or null when it is gone. */
export const peakRssMiB = (pid: number) => procStatusMiB(pid, 'VmHWM');

/** Current resident set size of a live process in MiB, or null when it is gone. */
export const rssMiB = (pid: number) => procStatusMiB(pid, 'VmRSS');
