/**
 * Runs every `*.test.ts` file, each in its own Node process (a file may start
 * servers and kill processes; isolation keeps one file's leftovers out of the next),
 * and ends with the plain `N passed, N failed` line CI reads.
 *
 * Each file runs in its own process group: on a timeout the whole group is killed
 * (the nats-servers and PNodes it spawned too, not just the file's own process), and
 * whatever the group still has running after the file exits is killed before the
 * next file starts.
 *
 * Usage: `npm test [-- <substring filter>...]`
 *
 * Environment:
 * - `DCNR_TEST_FILE_TIMEOUT_MS`: how long one file may run. @default 900000 (15 min)
 * - `DCNR_TEST_DIRS`: comma-separated folders (relative to the checkout) to scan
 *   instead of the whole checkout (the runner's own test points it at its fixtures).
 */
import { spawn } from 'node:child_process';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findTests } from './find-tests.js';
import { scoreFile } from './uvu-summary.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const DIRS = process.env.DCNR_TEST_DIRS?.split(',').filter(Boolean) ?? ['.'];
/** A file that hangs is a failure, not a stuck CI job. */
const FILE_TIMEOUT_MS = Number(process.env.DCNR_TEST_FILE_TIMEOUT_MS) || 15 * 60 * 1000;

/** SIGKILL every process of the group `pgid`; false when none was left. */
function killGroup(pgid: number): boolean {
  try {
    process.kill(-pgid, 'SIGKILL');
    return true;
  } catch {
    return false; // ESRCH: the group is empty
  }
}

const filters = process.argv.slice(2);
const files = DIRS.flatMap((d) => findTests(join(root, d))).filter(
  (f) => filters.length === 0 || filters.some((s) => relative(root, f).includes(s)),
);
if (files.length === 0) {
  console.log(`no test files match ${JSON.stringify(filters)}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

let passed = 0;
let failed = 0;
let skipped = 0;
const failures: string[] = [];
let running: number | undefined;
// The groups are detached from ours, so a Ctrl-C or a CI cancel would not reach them.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (running) killGroup(running);
    process.exit(1);
  });
}

for (const file of files) {
  const name = relative(root, file);
  console.log(`\n── ${name}`);
  const started = Date.now();
  const { code, output, timedOut } = await new Promise<{ code: number | null; output: string; timedOut: boolean }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: root,
      env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group, whose id is its pid
    });
    running = child.pid;
    let output = '';
    let timedOut = false;
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      process.stdout.write(chunk);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => {
      timedOut = true;
      const note = `\n${name}: timed out after ${FILE_TIMEOUT_MS / 1000} s; its process group killed\n`;
      output += note;
      process.stdout.write(note);
      killGroup(child.pid!);
    }, FILE_TIMEOUT_MS);
    let exitCode: number | null = null;
    // A leftover grandchild holding the pipes would keep 'close' from ever firing.
    child.on('exit', (c) => {
      exitCode = c;
      if (!timedOut && killGroup(child.pid!)) console.log(`   ${name}: processes left running after exit were killed`);
    });
    child.on('close', () => {
      clearTimeout(timer);
      running = undefined;
      resolve({ code: exitCode, output, timedOut });
    });
  });
  const score = scoreFile({ code, output, timedOut });
  passed += score.passed;
  failed += score.failed;
  skipped += score.skipped;
  if (score.failed > 0) failures.push(score.reason ? `${name} (${score.reason})` : name);
  const skipNote = score.skipped ? `, ${score.skipped} skipped` : '';
  console.log(`   ${name}: exit ${code}, ${((Date.now() - started) / 1000).toFixed(1)} s${skipNote}`);
}

if (failures.length) console.log(`\nfailed files:\n  ${failures.join('\n  ')}`);
if (skipped) console.log(`\n${skipped} skipped (.skip, or left out by a .only)`);
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
