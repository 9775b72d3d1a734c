/**
 * The dashboard end to end: a real 3-PNode cluster training, the page in headless
 * Chromium (Debian's /usr/bin/chromium through playwright-core), a PNode SIGKILLed for
 * real — the page must show it dead and its VNodes drawn on their new hosts, matching
 * /api/status. Saves test-artifacts/dashboard.png.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import type { NatsConnection } from '@nats-io/transport-node';
import '../actors/index.js';
import { startLocalCluster, type LocalCluster } from '../cluster/local-cluster.js';
import { waitForPNodes } from '../cluster/view.js';
import { connectNats } from '../cluster/process.js';
import type { StatusReport } from '../cluster/status.js';
import { startDashboard, type Dashboard } from '../dashboard/server.js';
import { createKernels } from '../runtime/kernels/index.js';
import { loadModelSpec, resolveModel } from '../runtime/model.js';
import { Subject } from '../runtime/protocol.js';
import { train } from '../trainer/train.js';
import { tempDir } from './helpers/nats.js';

const CHROMIUM = '/usr/bin/chromium';
const artifacts = fileURLToPath(new URL('../test-artifacts/', import.meta.url));
const dir = tempDir('dcnr-dashboard-');
let cluster: LocalCluster;
let nc: NatsConnection;
let dashboard: Dashboard;
let browser: Browser | undefined;
const stopTraining = new AbortController();
let training: Promise<unknown>;

const status = async (): Promise<StatusReport> => (await fetch(new URL('api/status', dashboard.url))).json() as Promise<StatusReport>;
async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test.before(async () => {
  cluster = await startLocalCluster({ pnodes: 0, storeDir: dir });
  nc = await connectNats(cluster.url, 'dashboard-test');
  // Up before the PNodes start, as in `dcnr up`: the timeline shows the joins. (Started
  // with the cluster, a PNode could join before the dashboard listened: seen once in CI.)
  dashboard = await startDashboard({ nc, port: 0 });
  for (let i = 1; i <= 3; i++) await cluster.spawnPNode(`pnode-${i}`);
  await waitForPNodes(nc, 3);
  const model = resolveModel(loadModelSpec('mnist-mlp'));
  // Long enough to still be running when the browser looks; stopped at the end.
  training = train({ nc, model, steps: 20_000, batch: 16, seed: 5, kernels: await createKernels(), signal: stopTraining.signal }).catch(() => {});
  await until('every VNode placed', async () => (await status()).vnodes.length === model.vnodes.length);
});

test.after(async () => {
  stopTraining.abort(new Error('test over'));
  await training;
  await browser?.close();
  await dashboard?.close();
  await nc?.close();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('HTTP: the page, /api/status with pids, clear 404 and 405', async () => {
  const page = await fetch(dashboard.url);
  assert.is(page.status, 200);
  assert.match(await page.text(), /<title>DCNR/);
  const s = await status();
  assert.is(s.pnodes.filter((p) => p.alive).length, 3);
  // Each VNode with its type and the graph's inputs (a chain here: the dataset, then each the one before).
  const spec = loadModelSpec('mnist-mlp');
  assert.equal(
    s.vnodes.map((v) => [v.id, v.type, v.inputs]),
    spec.vnodes.map((v, i) => [`${spec.name}.${i}`, v.type, [i - 1]]),
  );
  for (const p of s.pnodes) assert.ok(p.pid > 0 && p.kernelMode.length > 0);
  const missing = await fetch(new URL('nope', dashboard.url));
  assert.is(missing.status, 404);
  assert.match(await missing.text(), /not found/);
  const post = await fetch(new URL('api/status', dashboard.url), { method: 'POST' });
  assert.is(post.status, 405);
  // A port already taken is a clear error, not a crash.
  const taken = Number(new URL(dashboard.url).port);
  const err = await startDashboard({ nc, port: taken }).then(() => undefined, (e: Error) => e);
  assert.match(err?.message ?? 'it started', /port \d+ on 127\.0\.0\.1 is in use/);
});

// Runs before the browser test on purpose: that test needs a supervisor that survived
// this garbage (a `null` event used to close the supervisor's NATS reader).
test('garbage on the event subjects is ignored: the dashboard, its stream and the supervisor go on', async () => {
  const junk = ['not json', 'null', '42', '{}', '{"type":7}'];
  for (const j of junk) nc.publish(Subject.events('junk'), j);
  // A well-formed event after the junk, on the same subject: once the history holds it,
  // the dashboard has read every piece of junk before it (one publisher, in order).
  const sentinel = { type: 'released', vnode: 'garbage-test.0', pnode: 'garbage-test', reason: 'sent after the junk', at: Date.now() };
  nc.publish(Subject.events('junk'), JSON.stringify(sentinel));
  await nc.flush();
  const history = await until('the event after the junk in the history', async () => {
    const res = await fetch(new URL('api/events', dashboard.url));
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('event: history')) text += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    const h = JSON.parse(/event: history\ndata: (.*)\n/.exec(text)![1]) as { events: Array<Record<string, unknown>> };
    return h.events.some((e) => e.reason === sentinel.reason) && h.events;
  });
  // There is history (the three joins, the placements), and none of it is the junk.
  assert.is(history.filter((e) => e.type === 'joined').length, 3, 'the three joins are in the history');
  assert.ok(history.filter((e) => e.type === 'assigned').length >= 6, 'the placements are in the history');
  assert.ok(history.every((e) => typeof e.type === 'string' && typeof e.at === 'number'), `only well-formed events kept: ${JSON.stringify(history.filter((e) => typeof e.type !== 'string'))}`);
  const s = await status();
  assert.is(s.pnodes.filter((p) => p.alive).length, 3, 'the supervisor still reports three live PNodes');
});

test('browser: three live PNodes; one SIGKILLed is shown dead and its VNodes on their new hosts', async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  await page.goto(dashboard.url);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid^="pnode-pnode-"][data-alive="true"]').length === 3, null, { timeout: 60_000 });
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid^="vnode-"]')].length === 6 && [...document.querySelectorAll('[data-testid^="vnode-"]')].every((e) => e.getAttribute('data-pnode')), null, { timeout: 60_000 });

  // The loss curve is live: steps are drawn as they are trained.
  await page.waitForFunction(() => Number(document.querySelector('[data-testid="loss"]')?.getAttribute('data-points') ?? 0) > 0, null, { timeout: 120_000 });

  const timeline = await page.locator('[data-testid="events"] li').allTextContents();
  assert.is(await page.locator('[data-testid="events"] li[data-type="joined"]').count(), 3, `three joins on the timeline:\n${timeline.reverse().join('\n')}`);

  // A malformed message in a VNode's mailbox is rejected by its PNode, and the timeline says so.
  nc.publish(Subject.mailbox('mnist-mlp', 1, 'fwd'), 'not a tensor');
  await page.waitForSelector('[data-testid="events"] li[data-type="rejected"]', { timeout: 60_000 });

  const before = await status();
  const victim = [...before.pnodes].sort((a, b) => b.vnodes.length - a.vnodes.length)[0];
  assert.ok(victim.vnodes.length > 0, 'the victim hosts VNodes');
  const killedAt = Date.now();
  process.kill(victim.pid, 'SIGKILL');
  const deadAfter = await until('the API to report the kill', async () => (await status()).pnodes.find((p) => p.id === victim.id)?.alive === false && Date.now() - killedAt);
  process.stderr.write(`  /api/status reported ${victim.id} dead ${deadAfter} ms after SIGKILL\n`);

  await page.waitForFunction((id) => document.querySelector(`[data-testid="pnode-state-${id}"]`)?.textContent === 'dead', victim.id, { timeout: 60_000 });
  await page.waitForFunction(
    (id) => {
      const v = [...document.querySelectorAll('[data-testid^="vnode-"]')];
      return v.length === 6 && v.every((e) => e.getAttribute('data-pnode') && e.getAttribute('data-pnode') !== id);
    },
    victim.id,
    { timeout: 60_000 },
  );
  // What the page draws is what the ownership records say.
  const after = await status();
  for (const v of after.vnodes) {
    const drawn = await page.getAttribute(`[data-testid="vnode-${v.id}"]`, 'data-pnode');
    assert.is(drawn, v.pnode, `${v.id} drawn on ${drawn}, owned by ${v.pnode}`);
    assert.is.not(v.pnode, victim.id);
  }
  await page.waitForSelector('[data-testid="events"] li[data-type="dead"]', { timeout: 30_000 });
  // Training goes on on the new hosts, and the curve with it.
  const seqAfterMove = Number(await page.getAttribute('[data-testid="loss"]', 'data-last-seq'));
  await page.waitForFunction((seq) => Number(document.querySelector('[data-testid="loss"]')?.getAttribute('data-last-seq')) > seq + 5, seqAfterMove, { timeout: 120_000 });
  // A page opened now gets the whole curve from the metrics stream, not only what follows.
  const late = await browser.newPage();
  await late.goto(dashboard.url);
  await late.waitForFunction((n) => Number(document.querySelector('[data-testid="loss"]')?.getAttribute('data-points')) >= n, seqAfterMove + 1, { timeout: 60_000 });
  await late.close();
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: `${artifacts}dashboard.png`, fullPage: true });
  assert.ok(existsSync(`${artifacts}dashboard.png`));
});

test('the page reconnects by itself when the dashboard restarts', async () => {
  const page = await browser!.newPage();
  await page.goto(dashboard.url);
  await page.waitForFunction(() => document.querySelector('[data-testid="connection"]')?.classList.contains('live'), null, { timeout: 60_000 });
  const port = Number(new URL(dashboard.url).port);
  await dashboard.close();
  await page.waitForFunction(() => !document.querySelector('[data-testid="connection"]')?.classList.contains('live'), null, { timeout: 60_000 });
  dashboard = await startDashboard({ nc, port });
  await page.waitForFunction(() => document.querySelector('[data-testid="connection"]')?.classList.contains('live'), null, { timeout: 60_000 });
  // Fresh data after the reconnect: the PNodes as /api/status has them now.
  const s = await status();
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid^="pnode-pnode-"][data-alive="true"]').length === n, s.pnodes.filter((p) => p.alive).length, { timeout: 60_000 });
  await page.close();
});

test.run();
