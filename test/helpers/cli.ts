/**
 * Running this checkout's `dcnr` as a user runs it, in a child process: its exit code,
 * output, and the JSON of its last stdout line (commands run with `--json`).
 *
 * @example
 * const r = await dcnr(['generate', '--deployment', 'names-gpt', '--store', dir, '--json']);
 * assert.is(r.code, 0, r.stderr);
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../../bin/dcnr.js', import.meta.url));

export function dcnr(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; json?: Record<string, any> }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => {
      let json;
      try {
        json = JSON.parse(stdout.trim().split('\n').pop() ?? '');
      } catch {
        /* none */
      }
      done({ code, stdout, stderr, json });
    });
  });
}
