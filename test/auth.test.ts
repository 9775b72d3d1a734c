/**
 * Auth against a real nats-server in operator mode (the default of every launcher):
 * who can connect, and what each role's credentials let it publish. Every refusal is
 * the server's own (a permission in the user JWT), checked beside a control publish
 * that does go through — so each test can fail.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { ensureDeploymentStreams } from '../runtime/mailbox.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats } from '../cluster/process.js';
import type { NatsServer } from '../cluster/nats-server.js';
import { openBuckets } from '../runtime/cluster-state.js';
import { Bucket, Stream, Subject } from '../runtime/protocol.js';
import { createAuthority, writeCreds } from '../runtime/security/authority.js';
import { setupAuth, tempDir, type AuthFixture } from './helpers/nats.js';
import { waitFor } from './helpers/wait.js';

let fx: AuthFixture;
let server: NatsServer;
let admin: NatsConnection;

test.before(async () => {
  fx = await setupAuth();
  ({ server, admin } = fx);
  await openBuckets(admin); // the buckets exist, as in a running cluster
});

test.after(() => fx?.stop());

const as = (role: 'pnode' | 'observer' | 'trainer', name: string) => fx.as(role, name);

/** Publish `subject` from `nc`; true when the admin's subscriber got it. */
async function delivered(nc: NatsConnection, subject: string): Promise<boolean> {
  let got = false;
  const sub = admin.subscribe(subject, { callback: () => void (got = true) });
  await admin.flush();
  nc.publish(subject, 'x');
  await nc.flush().catch(() => {});
  await new Promise((r) => setTimeout(r, 300));
  await admin.flush();
  sub.unsubscribe();
  return got;
}

const putRefused = async (nc: NatsConnection, bucket: string, key: string) => {
  const kv = await new Kvm(nc).open(bucket);
  return kv.put(key, 'forged').then(
    () => false,
    (e: Error) => /permissions violation/i.test(e.message),
  );
};

test('without credentials nothing connects, and the error says what to do', async () => {
  const err = await connectNats(server.url, 'anon', '').then(
    (nc) => (void nc.close(), undefined),
    (e: Error) => e,
  );
  assert.ok(err, 'an anonymous client connected');
  assert.match(err!.message, /requires credentials: pass --creds FILE or set DCNR_CREDS/);
  const other = join(tempDir('dcnr-auth-other-'), 'auth');
  const stranger = await writeCreds(createAuthority(other), 'supervisor', 'stranger');
  const err2 = await connectNats(server.url, 'stranger', stranger).then(
    (nc) => (void nc.close(), undefined),
    (e: Error) => e,
  );
  assert.match(err2?.message ?? 'connected', /refused the credentials .*stranger\.creds/, 'credentials of another network are refused');
  rmSync(other, { recursive: true, force: true });
});

test('an observer reads but cannot publish into a mailbox, write KV or send heartbeats', async () => {
  const obs = await as('observer', 'observer');
  const buckets = await openBuckets(admin);
  await buckets.owners.put('mnist-mlp.0', JSON.stringify({ probe: 1 }));
  const kv = await new Kvm(obs).open(Bucket.Owners);
  assert.is((await kv.get('mnist-mlp.0'))?.string(), JSON.stringify({ probe: 1 }), 'the observer reads KV');
  assert.ok(await putRefused(obs, Bucket.Owners, 'mnist-mlp.0'), 'ownership write refused');
  assert.ok(await putRefused(obs, Bucket.State, 'mnist-mlp.0.meta'), 'state write refused');
  assert.not.ok(await delivered(obs, Subject.mailbox('mnist-mlp', 1, 'fwd')), 'mailbox publish refused');
  assert.not.ok(await delivered(obs, Subject.heartbeat('pnode-1')), 'heartbeat refused');
  assert.not.ok(await delivered(obs, Subject.control('drain')), 'control refused');
});

test('an observer follows KV and metrics with ordered consumers, but cannot attach one to a mailbox', async () => {
  const jsm = await jetstreamManager(admin);
  await ensureDeploymentStreams(jsm, 'watched');
  admin.publish(Subject.metrics('watched'), JSON.stringify({ probe: true }));
  await admin.flush();
  const obs = await as('observer', 'observer-consumers');
  const js = jetstream(obs);
  const metrics = await js.consumers.get(Stream.metrics('watched'), { filter_subjects: Subject.metrics('watched') });
  assert.ok(await metrics.next({ expires: 2000 }), 'the metrics record is read');
  const watch = await (await new Kvm(obs).open(Bucket.Owners)).watch();
  watch.stop();
  const mailbox = await js.consumers.get(Stream.mailbox('watched'), { filter_subjects: Subject.mailbox('watched', 0, 'fwd') }).then(
    () => 'created',
    (e: Error) => e.message,
  );
  assert.match(mailbox, /permissions violation/i, 'no consumer on a mailbox stream');
});

test('a PNode sends its own heartbeats only, and never writes ownership, deployments or others\' member records', async () => {
  const a = await as('pnode', 'pnode-a');
  assert.ok(await delivered(a, Subject.heartbeat('pnode-a')), 'its own heartbeat goes through (control)');
  assert.not.ok(await delivered(a, Subject.heartbeat('pnode-b')), "another PNode's heartbeat is refused");
  assert.not.ok(await delivered(a, Subject.events('supervisor')), "the supervisor's event subject is refused");
  assert.not.ok(await delivered(a, Subject.control('revoke')), 'revoke requests are refused');
  assert.ok(await delivered(a, Subject.mailbox('mnist-mlp', 2, 'fwd')), 'it can send into mailboxes (its VNodes talk to neighbours)');
  assert.ok(await putRefused(a, Bucket.Owners, 'mnist-mlp.0'), 'ownership write refused');
  assert.ok(await putRefused(a, Bucket.Deployments, 'mnist-mlp'), 'deployment write refused');
  assert.ok(await putRefused(a, Bucket.Members, 'pnode-b'), "another PNode's member record refused");
  assert.not.ok(await putRefused(a, Bucket.Members, 'pnode-a'), 'its own member record is written (control)');
});

test('a trainer deploys and feeds but cannot forge heartbeats, membership or revocations', async () => {
  const t = await as('trainer', 'trainer');
  assert.ok(await delivered(t, Subject.mailbox('mnist-mlp', 0, 'fwd')), 'it feeds mailboxes (control)');
  assert.not.ok(await delivered(t, Subject.heartbeat('pnode-1')), 'heartbeat refused');
  assert.not.ok(await delivered(t, Subject.control('revoke')), 'revoke refused');
  assert.ok(await putRefused(t, Bucket.Members, 'pnode-1'), 'member record refused');
  assert.not.ok(await putRefused(t, Bucket.Deployments, 'mnist-mlp'), 'it writes deployment records (control)');
});

test('a refused publish leaves the connection usable (the server says so, it does not disconnect)', async () => {
  const obs = await as('observer', 'observer-2');
  await delivered(obs, Subject.heartbeat('pnode-1'));
  await waitFor('the observer to be connected', () => !obs.isClosed());
  const kv = await new Kvm(obs).open(Bucket.Owners);
  assert.ok(await kv.get('mnist-mlp.0'), 'it still reads');
});

test.run();
