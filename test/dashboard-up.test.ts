/**
 * The acceptance of the dashboard as a user meets it: `dcnr up --pnodes 2
 * --dashboard-port 0` in a real process prints the dashboard URL, `GET /` serves the
 * page, `/api/status` lists both PNodes with their pids, and after one PNode is
 * SIGKILLed `/api/status` reports it not alive. How long that took is measured and
 * printed (the issue asks for under 2 s), never asserted: this machine is shared.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StatusReport } from '../cluster/status.js';
import { tempDir } from './helpers/nats.js';

const bin = fileURLToPath(new URL('../bin/dcnr.js', import.meta.url));
const dir = tempDir('dcnr-dashboard-up-');
let up: ChildProcess;
let stderr = '';
let stdout = '';
let url = '';
/** Every pid /api/status showed us: killed at the end if `dcnr up` left any behind. */
const seen = new Set<number>();

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 90_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; dcnr up said:\n${stderr.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
async function status(): Promise<StatusReport> {
  const s = (await (await fetch(new URL('api/status', url))).json()) as StatusReport;
  for (const p of s.pnodes) seen.add(p.pid);
  if (s.supervisor) seen.add(s.supervisor.pid);
  return s;
}

test.before(async () => {
  up = spawn(process.execPath, [bin, 'up', '--pnodes', '2', '--dashboard-port', '0', '--store', join(dir, 'store')], { stdio: ['ignore', 'pipe', 'pipe'] });
  up.stdout!.on('data', (c) => (stdout += c)); // the banner (NATS URL); the dashboard URL is read from stderr
  up.stderr!.on('data', (c) => (stderr += c));
  url = await until('the dashboard URL on stderr', async () => /dashboard on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(stderr)?.[1], 60_000);
});

test.after(async () => {
  if (up.exitCode === null && up.signalCode === null) {
    const exited = new Promise((r) => up.once('exit', r));
    up.kill('SIGINT');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
    if (up.exitCode === null && up.signalCode === null) up.kill('SIGKILL');
  }
  for (const pid of seen) if (alive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test('dcnr up --pnodes 2 --dashboard-port 0: the page, /api/status with pids, a SIGKILLed PNode reported dead', async () => {
  const page = await fetch(url);
  assert.is(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /text\/html/);
  assert.match(await page.text(), /<title>DCNR/);
  const script = await fetch(new URL('app.js', url));
  assert.is(script.status, 200);
  assert.match(script.headers.get('content-type') ?? '', /javascript/);

  const before = await until('two live PNodes in /api/status', async () => {
    const s = await status();
    return s.pnodes.filter((p) => p.alive).length === 2 && s;
  });
  for (const p of before.pnodes) assert.ok(Number.isInteger(p.pid) && p.pid > 0 && alive(p.pid), `${p.id} has a live pid (${p.pid})`);
  assert.ok(before.supervisor && before.supervisor.pid > 0, 'the supervisor is seen');

  // The same object `dcnr status --json` prints (the view's age aside).
  const natsUrl = await until('the NATS URL in the banner', async () => /on (nats:\/\/127\.0\.0\.1:\d+)/.exec(stdout)?.[1]);
  const cli = await new Promise<string>((resolve) => {
    // Auth is on in `dcnr up`: status reads with the observer's credentials it wrote.
    const c = spawn(process.execPath, [bin, '--creds', join(dir, 'store', 'auth', 'observer.creds'), 'status', '--nats', natsUrl, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('close', () => resolve(out));
  });
  const fromCli = JSON.parse(cli.trim().split('\n').pop()!) as StatusReport;
  const fromApi = await status();
  // Read a moment apart: what is re-measured between reads (capacity, risk) may differ.
  const comparable = (s: StatusReport) => ({ ...s, supervisor: s.supervisor && { pid: s.supervisor.pid }, pnodes: s.pnodes.map(({ gflops: _g, risk: _r, riskSignals: _s, ...p }) => p) });
  assert.equal(comparable(fromApi), comparable(fromCli));

  const victim = before.pnodes[0];
  process.kill(victim.pid, 'SIGKILL');
  const killedAt = Date.now();
  const after = await until(
    `${victim.id} reported not alive`,
    async () => {
      const s = await status();
      return s.pnodes.find((p) => p.id === victim.id)?.alive === false && s;
    },
    60_000,
    20,
  );
  const ms = Date.now() - killedAt;
  process.stderr.write(`  /api/status reported ${victim.id} (pid ${victim.pid}) not alive ${ms} ms after SIGKILL (target: under 2000 ms)\n`);
  assert.ok(after.pnodes.some((p) => p.id !== victim.id && p.alive), 'the other PNode is still alive');
});

test('bad requests get a clear 404 or 405; an SSE client that goes away does not hurt the server', async () => {
  const missing = await fetch(new URL('no/such/thing', url));
  assert.is(missing.status, 404);
  assert.match(await missing.text(), /not found/);
  const post = await fetch(new URL('api/status', url), { method: 'POST', body: '{}' });
  assert.is(post.status, 405);
  assert.is(post.headers.get('allow'), 'GET, HEAD');

  // Open the event stream, read its first snapshot, and hang up mid-stream — twice.
  for (let i = 0; i < 2; i++) {
    const ac = new AbortController();
    const res = await fetch(new URL('api/events', url), { signal: ac.signal });
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('event: status')) text += new TextDecoder().decode((await reader.read()).value);
    ac.abort();
    await reader.cancel().catch(() => {});
  }
  await new Promise((r) => setTimeout(r, 1500)); // a few status pushes to the departed clients
  const s = await fetch(new URL('api/status', url));
  assert.is(s.status, 200, 'the server still answers');
  assert.is(up.exitCode, null, 'dcnr up is still running');
});

test.run();
