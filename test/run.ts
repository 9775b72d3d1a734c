/**
 * Runs every `*.test.ts` file, each in its own Node process (a file may start
 * servers and kill processes; isolation keeps one file's leftovers out of the next),
 * and ends with the plain `N passed, N failed` line CI reads.
 *
 * Usage: `npm test [-- <substring filter>...]`
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const DIRS = ['runtime', 'actors', 'supervisor', 'scenarios', 'bench', 'test'];
/** A file that hangs is a failure, not a stuck CI job. */
const FILE_TIMEOUT_MS = 15 * 60 * 1000;

function findTests(dir: string): string[] {
  let out: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries.sort()) {
    if (name === 'node_modules') continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out = out.concat(findTests(path));
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
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

const strip = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');
let passed = 0;
let failed = 0;
const failures: string[] = [];

for (const file of files) {
  const name = relative(root, file);
  console.log(`\n── ${name}`);
  const started = Date.now();
  const { code, output } = await new Promise<{ code: number; output: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: root,
      env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      process.stdout.write(chunk);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => {
      output += `\n${name}: timed out after ${FILE_TIMEOUT_MS / 1000} s\n`;
      child.kill('SIGKILL');
    }, FILE_TIMEOUT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, output });
    });
  });
  const text = strip(output);
  const num = (label: string) => Number(text.match(new RegExp(`${label}:\\s+(\\d+)`))?.[1] ?? NaN);
  const total = num('Total');
  const ok = num('Passed');
  const skipped = num('Skipped') || 0;
  let fileFailed = Number.isNaN(total) ? 0 : total - ok - skipped;
  if (!Number.isNaN(ok)) passed += ok;
  // A crash or a non-zero exit with no failed test counted is still a failure.
  if (code !== 0 && fileFailed === 0) fileFailed = 1;
  if (Number.isNaN(total) && code === 0) fileFailed = 1; // ran no test
  failed += fileFailed;
  if (fileFailed > 0) failures.push(name);
  console.log(`   ${name}: exit ${code}, ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

if (failures.length) console.log(`\nfailed files:\n  ${failures.join('\n  ')}`);
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
