/**
 * Signed state against a real nats-server with auth: a PNode may write `dcnr_state`
 * (ownership moves), so what keeps it from writing another VNode's state is the owner's
 * signature. A meta the owner of its epoch did not sign is never loaded and is written
 * over by the owner's next commit; a blob that does not hash as the signed meta says is
 * refused; a verifier without the epoch record refuses too. Messages: a forged sender is
 * told apart from the owner.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Kvm } from '@nats-io/kv';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { assignOwner, openBuckets, type Buckets } from '../runtime/cluster-state.js';
import { Bucket, Header, stateMetaKey } from '../runtime/protocol.js';
import { localTag, messageDigest, signerOf, signToText } from '../runtime/security/signing.js';
import { createSenderCheck, expectedSender, senderCheckOf, stateAuthOf } from '../runtime/security/verifier.js';
import { StateStore } from '../runtime/state-store.js';
import { setupAuth, type AuthFixture } from './helpers/nats.js';

let fx: AuthFixture;
let admin: NatsConnection;
let buckets: Buckets;

test.before(async () => {
  fx = await setupAuth();
  admin = fx.admin;
  buckets = await openBuckets(admin);
});

test.after(() => fx?.stop());

const pnode = (name: string) => fx.as('pnode', name);

const write = (epoch: number, w: number) => ({ type: 'layer.dense', typeVersion: 1, generation: 1, epoch, snapshot: { w }, tensors: { W: new Float32Array([w, w + 1, w + 2]) }, stash: new Map() });

test("a rogue PNode's meta over another's VNode is never loaded, and the owner writes over it", async () => {
  const owner = await pnode('owner');
  const rogue = await pnode('rogue');
  const record = await assignOwner(buckets.owners, 'dep', 1, 'owner', { signed: { epochs: buckets.epochs, publicKey: signerOf(owner)!.publicKey, generation: 1 } });
  const ownerStore = new StateStore(await new Kvm(owner).open(Bucket.State), { auth: await stateAuthOf(owner) });
  const first = await ownerStore.write('dep', 1, null, write(record.epoch, 1));
  const reader = new StateStore(await new Kvm(admin).open(Bucket.State), { auth: await stateAuthOf(admin) });
  assert.ok(await reader.read('dep', 1), "the owner's meta verifies");

  // The rogue's own signed state, over the owner's meta: its permissions allow the write.
  const rogueStore = new StateStore(await new Kvm(rogue).open(Bucket.State), { auth: await stateAuthOf(rogue) });
  await rogueStore.write('dep', 1, first, write(record.epoch, 666));
  await reader.read('dep', 1).then(
    () => assert.unreachable('the forged meta was loaded'),
    (err: Error) => assert.match(err.message, /damaged: not written by the owner of epoch 1/),
  );
  // The owner's next commit writes over it (junk, not a newer owner: it is not fenced).
  const second = await ownerStore.write('dep', 1, first, write(record.epoch, 2));
  const back = await reader.read('dep', 1);
  assert.is(back?.revision, second.revision);
  assert.equal((await reader.load(back!.meta)).tensors.W, new Float32Array([2, 3, 4]));

  // A blob overwritten under the signed meta: refused at load.
  const blob = second.meta.tensors.W.key;
  await (await new Kvm(rogue).open(Bucket.State)).put(blob, new Uint8Array(new Float32Array([9, 9, 9]).buffer));
  await reader.load(second.meta).then(
    () => assert.unreachable('a tampered blob was loaded'),
    (err: Error) => assert.match(err.message, /does not hash as its signed meta says/),
  );
  // Unsigned state (a store without auth wrote it) is refused by a reader with auth.
  const plain = new StateStore(await new Kvm(owner).open(Bucket.State));
  const c = await plain.write('dep', 2, null, write(record.epoch, 5));
  assert.ok(c);
  await reader.read('dep', 2).then(
    () => assert.unreachable('unsigned state was loaded'),
    (err: Error) => assert.match(err.message, /unsigned/),
  );
  await (await new Kvm(admin).open(Bucket.State)).delete(stateMetaKey('dep', 2));
});

test('a message is entitled only when its signer owned the sending VNode at that epoch', async () => {
  const owner = await pnode('owner-m');
  const rogue = await pnode('rogue-m');
  const r = await assignOwner(buckets.owners, 'msgs', 0, 'owner-m', { signed: { epochs: buckets.epochs, publicKey: signerOf(owner)!.publicKey, generation: 7 } });
  const check = await senderCheckOf(admin);
  const fields = { deployment: 'msgs', to: 1, kind: 'fwd', seq: 3, epoch: r.epoch, from: 'msgs.0.layer.dense', shape: '1,2' };
  const payload = new Uint8Array(new Float32Array([1, 2]).buffer);
  const signed = (nc: NatsConnection, p = payload) => {
    const h = headers();
    const s = signerOf(nc)!;
    h.set(Header.Signer, s.publicKey);
    h.set(Header.Signature, signToText(s, messageDigest(fields, p)));
    return h;
  };
  assert.is(await check.message(signed(owner), payload, fields, undefined, 7, 0), null, "the owner's message is entitled");
  assert.match((await check.message(signed(owner), payload, fields, undefined, 8, 0)) ?? 'accepted', /no record of who may send/, 'another generation (a fresh run under the same name) has its own owners');
  assert.match((await check.message(signed(rogue), payload, fields, undefined, 7, 0)) ?? 'accepted', /forged sender: msgs\.0\.layer\.dense at epoch 1/);
  assert.match((await check.message(signed(owner), new Uint8Array(8), fields, undefined, 7, 0)) ?? 'accepted', /bad signature/, 'a changed payload breaks the signature');
  assert.match((await check.message(headers(), payload, fields, undefined, 7, 0)) ?? 'accepted', /unsigned/);
  assert.match((await check.message(signed(owner), payload, { ...fields, epoch: 9 }, undefined, 7, 0)) ?? 'accepted', /bad signature|no record of who may send/, 'another epoch is not what was signed');
  const asTrainer = { ...fields, from: 'trainer', epoch: 0 };
  const t = headers();
  t.set(Header.Signer, signerOf(rogue)!.publicKey);
  t.set(Header.Signature, signToText(signerOf(rogue)!, messageDigest(asTrainer, payload)));
  assert.match((await check.message(t, payload, asTrainer, signerOf(owner)!.publicKey, 7, 'trainer')) ?? 'accepted', /forged sender: trainer/);
  assert.is(await check.message(t, payload, asTrainer, signerOf(rogue)!.publicKey, 7, 'trainer'), null, 'the deployment\'s own trainer key is entitled');
  // The owner of VNode 0, properly signed, sending where VNode 0 never sends: refused.
  assert.match((await check.message(signed(owner), payload, fields, undefined, 7, 2)) ?? 'accepted', /wrong sender: fwd to VNode 1 comes from VNode 2, not msgs\.0\.layer\.dense/);
  assert.match((await check.message(signed(owner), payload, fields, undefined, 7, 'trainer')) ?? 'accepted', /wrong sender: .* comes from the trainer/);
  // A chain of 3 (VNode k reads k − 1, the last is the loss), and a merge reading VNodes 0 and 2 whose output VNodes 4 and 5 read.
  const chain = (k: number) => ({ inputs: [k - 1], consumers: k < 2 ? [{ index: k + 1 }] : [] });
  assert.equal([expectedSender('fwd', chain(0)), expectedSender('fwd', chain(2)), expectedSender('bwd', chain(1)), expectedSender('bwd', chain(2)), expectedSender('target', chain(2))], ['trainer', 1, 2, -1, 'trainer']);
  const merge = { inputs: [0, 2], consumers: [{ index: 4 }, { index: 5 }] };
  assert.equal([expectedSender('fwd', merge), expectedSender('fwd1', merge), expectedSender('fwd2', merge), expectedSender('bwd', merge), expectedSender('bwd1', merge), expectedSender('bwd2', merge)], [0, 2, -1, 4, 5, -1]);
});

test("a message this process sent itself is checked by its local tag, anyone else's by the signature", async () => {
  const owner = await pnode('owner-l');
  const r = await assignOwner(buckets.owners, 'local', 0, 'owner-l', { signed: { epochs: buckets.epochs, publicKey: signerOf(owner)!.publicKey, generation: 1 } });
  const check = createSenderCheck({ epochs: buckets.epochs, ownKey: signerOf(owner)!.publicKey });
  const fields = { deployment: 'local', to: 1, kind: 'fwd', seq: 1, epoch: r.epoch, from: 'local.0.layer.dense', shape: '1,1' };
  const payload = new Uint8Array(4);
  const digest = messageDigest(fields, payload);
  const h = headers();
  h.set(Header.Signer, signerOf(owner)!.publicKey);
  h.set(Header.Signature, 'A'.repeat(86)); // not a valid signature: only the tag can pass it
  h.set(Header.LocalTag, localTag(digest));
  assert.is(await check.message(h, payload, fields, undefined, 1, 0), null, 'our own tag is enough');
  h.set(Header.LocalTag, localTag(messageDigest({ ...fields, seq: 2 }, payload)));
  assert.match((await check.message(h, payload, fields, undefined, 1, 0)) ?? 'accepted', /bad signature/, 'a tag of other content falls back to the signature, which fails');
  const stranger = createSenderCheck({ epochs: buckets.epochs, ownKey: signerOf(admin)!.publicKey });
  h.set(Header.LocalTag, localTag(digest));
  assert.match((await stranger.message(h, payload, fields, undefined, 1, 0)) ?? 'accepted', /bad signature/, 'another key holder checks the signature');
});

test.run();
