/**
 * Run the `dcnr` command line as a user does, in a child process, and collect what it
 * printed: exit code or signal, stdout, stderr, and the JSON object of its last stdout
 * line (`--json`), if there is one.
 *
 * @example
 * const run = await dcnr(['train', '--pnodes', '0', '--steps', '20', '--json']);
 * assert.is(run.code, 0, run.stderr);
 * run.json!.paramsHash;
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../../bin/dcnr.js', import.meta.url));

export interface DcnrRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The last stdout line as JSON; undefined when it is not (no `--json`, a failed or killed run). */
  json?: Record<string, any>;
}

/** Run `dcnr ...args`; with `killWhen`, SIGKILL it once its stderr matches. */
export function dcnr(args: string[], killWhen?: RegExp): Promise<DcnrRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => {
      stderr += c;
      if (killWhen?.test(stderr) && child.exitCode === null) child.kill('SIGKILL');
    });
    child.on('close', (code, signal) => {
      let json;
      try {
        json = JSON.parse(stdout.trim().split('\n').pop() ?? '');
      } catch {
        /* no JSON */
      }
      resolve({ code, signal, stdout, stderr, json });
    });
  });
}
