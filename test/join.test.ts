/**
 * Permissionless join and revocation, for real: a `dcnr pnode --join` process joins a
 * running `dcnr up` cluster (auth on) through the supervisor's registrar with nothing but the
 * registrar's URL, gets VNodes of a training run, and is revoked with `dcnr revoke`:
 * nats-server closes its connection, the process exits, its VNodes move, the run
 * completes, and the same key is refused if it tries again. The admission policies
 * (allowlist, proof of work) are checked on an in-process registrar.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../actors/index.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { startPrivateNats } from '../cluster/local-cluster.js';
import { connectNats, forgetCreds } from '../cluster/process.js';
import { readView, waitForPNodes } from '../cluster/view.js';
import { createKernels } from '../runtime/kernels/index.js';
import { loadModelSpec, resolveModel } from '../runtime/model.js';
import { joinNetwork, loadOrCreateIdentity } from '../runtime/security/join.js';
import { parseAdmission, startRegistrar } from '../supervisor/registrar.js';
import { train } from '../trainer/train.js';
import { tempDir } from './helpers/nats.js';
import { waitFor } from './helpers/wait.js';

const BIN = fileURLToPath(new URL('../bin/dcnr.js', import.meta.url));

test('a PNode joins a running `dcnr up` cluster with one command, gets VNodes, and is revoked', async () => {
  const dir = tempDir('dcnr-join-');
  const store = join(dir, 'store');
  const up = spawn(process.execPath, [BIN, 'up', '--pnodes', '1', '--no-dashboard', '--store', store], { stdio: ['ignore', 'pipe', 'pipe'] });
  let banner = '';
  up.stdout!.on('data', (d) => (banner += d));
  let upErr = '';
  up.stderr!.on('data', (d) => (upErr = (upErr + d).slice(-20_000)));
  let joiner: ChildProcess | undefined;
  let nc: NatsConnection | undefined;
  // Aborted in `finally` too: a failed check must not leave the training running (the file would hang to its timeout).
  const stop = new AbortController();
  try {
    await waitFor('the banner of dcnr up', () => banner.includes('Ctrl-C stops everything'), 60_000);
    const natsUrl = /on (nats:\/\/127\.0\.0\.1:\d+)/.exec(banner)![1];
    const registrarUrl = /pnode --join (http:\/\/127\.0\.0\.1:\d+\/)/.exec(banner)?.[1];
    assert.ok(registrarUrl, `dcnr up prints the join command:\n${banner}`);
    const admin = join(store, 'auth', 'admin.creds');
    nc = await connectNats(natsUrl, 'join-test', admin);
    await waitForPNodes(nc, 1);
    // From "another shell": nothing but the registrar's URL — no credentials, no NATS URL.
    const identity = join(dir, 'joiner.nk');
    joiner = spawn(process.execPath, [BIN, 'pnode', '--join', registrarUrl!, '--name', 'joiner', '--identity', identity], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DCNR_CREDS: '' } });
    let out = '';
    joiner.stdout!.on('data', (d) => (out += d));
    joiner.stderr!.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => joiner!.once('exit', (code) => r(code)));
    await waitForPNodes(nc, 2, 60_000);

    const model = resolveModel(loadModelSpec('mnist-mlp'));
    // Placement weighs each PNode by its measured GFLOP/s, the start-up sample until three
    // probes are in: on a loaded machine one PNode's first sample can read 10× low, and the
    // other PNode then takes every VNode (seen in CI: the joiner got none). Deploy once the
    // two measure alike (equal weights), or after 30 s regardless.
    await waitFor('the two PNodes to measure alike', async () => {
      const g = ((await readView(nc!))?.pnodes ?? []).filter((p) => p.alive).map((p) => p.capacity.gflops);
      return g.length === 2 && Math.max(...g) < 1.75 * Math.min(...g);
    }, 30_000).catch(() => {});
    const training = train({ nc, model, steps: 3000, batch: 16, seed: 3, kernels: await createKernels(), signal: stop.signal });
    training.catch(() => {}); // aborted in `finally` when a check fails: not an unhandled rejection
    let seen = '';
    await waitFor('the joiner to host VNodes', async () => {
      const v = await readView(nc!);
      seen = JSON.stringify(v?.pnodes.map((p) => ({ id: p.id, alive: p.alive, draining: p.draining, risk: p.risk, gflops: p.capacity.gflops, vnodes: p.vnodes })));
      return (v?.pnodes.find((p) => p.id === 'joiner')?.vnodes.length ?? 0) > 0;
    }, 60_000).catch((err: Error) => assert.unreachable(`${err.message}; last view: ${seen}; dcnr up said:\n${upErr.slice(-3000)}`));

    const revoke = spawnSync(process.execPath, [BIN, '--creds', admin, 'revoke', 'joiner', '--nats', natsUrl, '--json'], { encoding: 'utf8' });
    assert.is(revoke.status, 0, `dcnr revoke failed: ${revoke.stderr}`);
    const reply = JSON.parse(revoke.stdout.trim().split('\n').at(-1)!) as { ok: boolean; keys: string[] };
    assert.ok(reply.ok && reply.keys.length === 1, `revoke reply: ${revoke.stdout}`);
    assert.is(reply.keys[0], loadOrCreateIdentity(identity).getPublicKey(), "the joiner's own key is revoked");

    const code = await Promise.race([exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 30_000))]);
    assert.is(code, 1, `the revoked PNode exits (it cannot talk to NATS any more); output:\n${out}`);
    assert.match(out, /NATS closed our connection/);
    let last = '';
    await waitFor('the joiner to be dead and its VNodes moved', async () => {
      const v = await readView(nc!);
      last = JSON.stringify(v?.pnodes.map((p) => ({ id: p.id, alive: p.alive, vnodes: p.vnodes })));
      return v?.pnodes.find((p) => p.id === 'joiner')?.alive === false && (v?.pnodes.find((p) => p.id === 'pnode-1')?.vnodes.length ?? 0) === model.vnodes.length;
    }, 30_000).catch((err: Error) => assert.unreachable(`${err.message}; last view: ${last}; dcnr up said:\n${upErr.slice(-3000)}`));
    stop.abort();
    await training.catch(() => {});

    // The same key again: refused with the registrar's reason, one line.
    const again = spawnSync(process.execPath, [BIN, 'pnode', '--join', registrarUrl!, '--name', 'joiner', '--identity', identity], { encoding: 'utf8', env: { ...process.env, DCNR_CREDS: '' }, timeout: 60_000 });
    assert.is(again.status, 1);
    assert.match(again.stderr, /refused joiner: this key was revoked/);
    // Another key under the revoked PNode's name: the name is taken.
    const other = spawnSync(process.execPath, [BIN, 'pnode', '--join', registrarUrl!, '--name', 'joiner', '--identity', join(dir, 'other.nk')], { encoding: 'utf8', env: { ...process.env, DCNR_CREDS: '' }, timeout: 60_000 });
    assert.is(other.status, 1);
    assert.match(other.stderr, /the name joiner belongs to another key/);
  } finally {
    stop.abort();
    joiner?.kill('SIGKILL');
    await nc?.close();
    const gone = new Promise((r) => up.once('exit', r));
    up.kill('SIGINT');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 15_000))]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('admission policies: an allowlist admits only its keys; proof of work admits only with the work', async () => {
  const dir = tempDir('dcnr-admission-');
  const own = await startPrivateNats(dir, true);
  const nc = await connectNats(own.server.url, 'admission-test', own.adminCreds);
  const known = loadOrCreateIdentity(join(dir, 'known.nk'));
  const listFile = join(dir, 'allow.txt');
  writeFileSync(listFile, `# admitted PNodes\n${known.getPublicKey()}\n`);
  const registrars = [];
  try {
    const allow = await startRegistrar({ nc, authority: own.authority!, natsUrl: own.server.url, port: 0, admission: parseAdmission(`allowlist:${listFile}`), log: () => {} });
    registrars.push(allow);
    const joined = await joinNetwork(allow.url, 'known', join(dir, 'known.nk'));
    const member = await connectNats(own.server.url, 'known', joined.credsFile);
    await member.close();
    const twice = await joinNetwork(allow.url, 'known-again', join(dir, 'known.nk')).then(() => 'admitted', (e: Error) => e.message);
    assert.match(twice, /this key was admitted as known: one PNode per key/);
    const refused = await joinNetwork(allow.url, 'unknown', join(dir, 'unknown.nk')).then(() => 'admitted', (e: Error) => e.message);
    assert.match(refused, /refused unknown: key not on the allowlist/);

    const pow = await startRegistrar({ nc, authority: own.authority!, natsUrl: own.server.url, port: 0, admission: parseAdmission('pow:12'), log: () => {} });
    registrars.push(pow);
    const lines: string[] = [];
    const worked = await joinNetwork(pow.url, 'worker', join(dir, 'worker.nk'), (l) => lines.push(l));
    assert.ok(worked.credsFile.endsWith('worker.nk.creds'));
    assert.match(lines.join('\n'), /proof of work, 12 bits/);
    // Without the work: a hand-made request with a valid signature but no `work`.
    const kp = loadOrCreateIdentity(join(dir, 'lazy.nk'));
    const { nonce } = (await (await fetch(new URL('v1/challenge', pow.url))).json()) as { nonce: string };
    const { joinPayload } = await import('../runtime/security/join.js');
    const signature = Buffer.from(kp.sign(joinPayload(nonce, 'lazy', kp.getPublicKey()))).toString('base64url');
    const res = await fetch(new URL('v1/join', pow.url), { method: 'POST', body: JSON.stringify({ name: 'lazy', publicKey: kp.getPublicKey(), nonce, signature }) });
    assert.is(res.status, 403);
    assert.match(((await res.json()) as { error: string }).error, /proof of work short of 12 bits/);
    // Junk bodies get a 4xx and one line, never a crash.
    for (const body of ['not json', '{}', JSON.stringify({ name: 'x', publicKey: 'Ufoo', nonce, signature })]) {
      const r = await fetch(new URL('v1/join', pow.url), { method: 'POST', body });
      assert.ok(r.status >= 400 && r.status < 500, `${body}: ${r.status}`);
    }
    assert.throws(() => parseAdmission('pow:0'), /1-32 bits/);
    assert.throws(() => parseAdmission('closed'), /open, allowlist:FILE or pow:BITS/);
  } finally {
    for (const r of registrars) await r.close();
    await nc.close();
    forgetCreds(own.server.url);
    await own.server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
