/**
 * The test runner itself (test/run.ts), run for real on the fixture files in
 * test/fixtures/runner/: a timed-out file's whole process group dies with it, a
 * `.only` does not make the failed count negative, a file that runs no test fails,
 * and every folder of the checkout is scanned.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './helpers/nats.js';
import { findTests } from './find-tests.js';

const runner = fileURLToPath(new URL('./run.ts', import.meta.url));
const root = fileURLToPath(new URL('..', import.meta.url));

function runRunner(filter: string, env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', runner, filter], {
      cwd: root,
      env: { ...process.env, DCNR_TEST_DIRS: 'test/fixtures/runner', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    child.on('close', (code) => resolve({ code, out }));
  });
}

const lastLine = (out: string) => out.trim().split('\n').at(-1);

/** Alive and not a zombie waiting for its reaper. */
function alive(pid: number): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    return state !== undefined && state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

const run = suite('run.ts');

run('a file past DCNR_TEST_FILE_TIMEOUT_MS fails, and the grandchild it spawned is killed with it', async () => {
  const dir = tempDir('dcnr-runner-');
  const pidFile = join(dir, 'grandchild.pid');
  try {
    const r = await runRunner('hangs-with-grandchild', { DCNR_TEST_FILE_TIMEOUT_MS: '3000', DCNR_FIXTURE_PID_FILE: pidFile });
    assert.is(r.code, 1, r.out);
    assert.match(r.out, /hangs-with-grandchild\.test\.ts: timed out after 3 s/);
    assert.match(r.out, /hangs-with-grandchild\.test\.ts \(timed out\)/);
    assert.is(lastLine(r.out), '0 passed, 1 failed');
    const pid = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(pid > 0, 'the fixture started its grandchild');
    // SIGKILL is delivered before run.ts exits; the orphan's reaping may lag a little.
    for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    const stillAlive = alive(pid);
    if (stillAlive) process.kill(pid, 'SIGKILL');
    assert.not.ok(stillAlive, `grandchild ${pid} survived the timeout`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

run('a .only: its one test passed, none failed (not negative), the left-out ones reported skipped', async () => {
  const r = await runRunner('only.test');
  assert.is(r.code, 0, r.out);
  assert.match(r.out, /\n3 skipped/);
  assert.is(lastLine(r.out), '1 passed, 0 failed');
});

run('a file that runs no test (Total: 0) is a failure', async () => {
  const r = await runRunner('no-test');
  assert.is(r.code, 1, r.out);
  assert.match(r.out, /no-test\.test\.ts \(ran no test\)/);
  assert.is(lastLine(r.out), '0 passed, 1 failed');
});

run.run();

const find = suite('findTests');

find('every folder is scanned (cli/, dashboard/, new ones); node_modules, dot-folders and fixtures are not', () => {
  const dir = tempDir('dcnr-find-');
  try {
    const files = ['cli/a.test.ts', 'dashboard/b.test.ts', 'new-folder/deep/c.test.ts', 'runtime/d.test.ts', 'runtime/d.ts',
      'node_modules/x/e.test.ts', '.dcnr/f.test.ts', 'test/fixtures/runner/g.test.ts', 'test/h.test.ts'];
    for (const f of files) {
      mkdirSync(join(dir, f, '..'), { recursive: true });
      writeFileSync(join(dir, f), '');
    }
    assert.equal(findTests(dir).map((f) => f.slice(dir.length + 1)), [
      'cli/a.test.ts', 'dashboard/b.test.ts', 'new-folder/deep/c.test.ts', 'runtime/d.test.ts', 'test/h.test.ts',
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

find('this checkout: the runner\'s own tests and the scenario tests are found, no fixture is', () => {
  const found = findTests(root).map((f) => f.slice(root.length));
  for (const f of ['test/run.test.ts', 'test/uvu-summary.test.ts', 'scenarios/scenarios.test.ts', 'runtime/actor-host.test.ts']) {
    assert.ok(found.includes(f), f);
  }
  assert.not.ok(found.some((f) => f.includes('fixtures/')));
});

find.run();
