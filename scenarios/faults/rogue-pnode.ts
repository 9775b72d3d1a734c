/**
 * `rogue-pnode`: an admitted PNode (valid PNode credentials, its own name) turns
 * hostile mid-training. What its permissions allow — mailboxes, state — the signature
 * checks stop; what they do not, nats-server refuses:
 *   - signed tensors into a VNode it does not own, claiming to be that VNode's
 *     neighbour: rejected (forged sender), dead-lettered, counted;
 *   - junk under the message ids of the next genuine messages (taking them first): the
 *     genuine ids carry their signature's tag, so nothing genuine is dropped; the junk
 *     is rejected (unsigned);
 *   - a state meta written over a live VNode's, signed by itself: never loaded, written
 *     over by the owner's next checkpoint (checked: the stored meta is the owner's again);
 *   - another PNode's heartbeat, the ownership records, the epochs, the deployment:
 *     refused by nats-server.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Kvm } from '@nats-io/kv';
import { subscribeClusterEvents } from '../../runtime/cluster-state.js';
import { Bucket, messageId, ownerKey, stateMetaKey, Subject } from '../../runtime/protocol.js';
import { metaDigest, signToText } from '../../runtime/security/signing.js';
import { stateAuthOf } from '../../runtime/security/verifier.js';
import { StateStore } from '../../runtime/state-store.js';
import { attackerCreds, coreRequest, currentEpoch, kvWrite, publishTensor, serverRefuses, tryConnect } from './attacks.js';
import type { Attack, FaultKind } from './types.js';

export const roguePNode: FaultKind = {
  kind: 'rogue-pnode',
  description: 'an admitted PNode publishes into VNodes it does not own, writes state it does not own, re-uses message ids, forges heartbeats and ownership',
  async inject(ctx, fault) {
    if (!ctx.authority) throw new Error('rogue-pnode needs auth on (do not pass --no-auth)');
    const at = Date.now();
    const dep = ctx.deployment;
    const rogue = await attackerCreds(ctx.authority, 'pnode', 'rogue');
    const nc = await tryConnect(ctx.cluster.url, rogue.creds);
    if (typeof nc === 'string') throw new Error(`rogue-pnode: its credentials did not connect: ${nc}`);
    const attacks: Attack[] = [];
    let injected = 0;
    try {
      const v2 = ctx.model.vnodes[2];
      const epoch1 = await currentEpoch(ctx.nc, dep, 1);
      // 1. As VNode 1 (which it does not own), signed with its own key.
      const forged = fault.count ?? 5;
      for (let i = 0; i < forged; i++) {
        const seq = fault.atStep + 2 + i;
        await publishTensor(nc, { deployment: dep, to: 2, kind: 'fwd', port: 'fwd', seq, epoch: epoch1, from: `${dep}.1.${ctx.model.vnodes[1].def.type}`, rows: 4, cols: v2.inFeatures, signer: rogue.signer, msgID: `${messageId(dep, 2, 'fwd', 'fwd', seq)}.rogue${i}` });
        injected++;
      }
      // 2. The plain ids of the next genuine messages, taken first with junk.
      for (let i = 0; i < forged; i++) {
        const seq = fault.atStep + 4 + i;
        await publishTensor(nc, { deployment: dep, to: 2, kind: 'fwd', port: 'fwd', seq, epoch: epoch1, from: `${dep}.1.${ctx.model.vnodes[1].def.type}`, rows: 4, cols: v2.inFeatures, msgID: messageId(dep, 2, 'fwd', 'fwd', seq) });
        injected++;
      }
      // 3. Its own meta over VNode 1's, signed by itself (its permissions allow the write).
      const state = await new Kvm(nc).open(Bucket.State);
      const key = stateMetaKey(dep, 1);
      const entry = await state.get(key);
      if (entry && entry.operation === 'PUT') {
        const meta = JSON.parse(entry.string()) as Record<string, unknown>;
        delete meta.signer;
        delete meta.signature;
        const text = JSON.stringify({ ...meta, epoch: Number(meta.epoch) + 7 });
        await state.put(key, JSON.stringify({ ...JSON.parse(text), signer: rogue.signer.publicKey, signature: signToText(rogue.signer, metaDigest(text)) }));
        // The owner writes over it with its next checkpoint; the meta must then verify again.
        const store = new StateStore(await new Kvm(ctx.nc).open(Bucket.State), { auth: await stateAuthOf(ctx.nc) });
        let restored = false;
        for (let i = 0; i < 150 && !restored; i++) {
          await sleep(100);
          restored = await store.read(dep, 1).then((c) => c !== null, () => false);
        }
        attacks.push({ name: "rogue: its own signed meta over a live VNode's state", refused: restored, detail: restored ? "never loaded; the owner's next checkpoint wrote over it" : 'the forged meta was still there after 15 s' });
      } else {
        attacks.push({ name: "rogue: its own signed meta over a live VNode's state", refused: false, detail: 'VNode 1 had no state to attack yet' });
      }
      // 4. A heartbeat on its own subject that names another PNode (to pass its key off as
      //    that PNode's, or to keep a dead one alive): the supervisor goes by the subject.
      const joined: string[] = [];
      const events = subscribeClusterEvents(ctx.nc, (e) => void (e.type === 'joined' && joined.push(e.pnode)));
      const hb = { pnode: 'ghost-pnode', pid: 1, at: Date.now(), capacity: { cores: 2, memoryMb: 1024, kernelMode: 'js', gflops: 1000, maxVNodes: 256, types: ctx.model.vnodes.map((v) => v.def.type) }, vnodes: [], counters: { fencedWrites: 0, rejected: 0, restarts: 0, escalations: 0, activations: 0 }, publicKey: rogue.signer.publicKey };
      for (let i = 0; i < 4; i++) {
        nc.publish(Subject.heartbeat('rogue'), JSON.stringify({ ...hb, at: Date.now() }));
        await sleep(250);
      }
      await nc.flush();
      await sleep(1000);
      events.unsubscribe();
      attacks.push({ name: 'rogue: heartbeats naming another PNode on its own subject', refused: !joined.includes('ghost-pnode'), detail: joined.includes('ghost-pnode') ? 'the supervisor took ghost-pnode for a member' : 'ignored: the supervisor goes by the subject' });
      // 5. What nats-server refuses outright.
      attacks.push(
        await serverRefuses("rogue: another PNode's heartbeat", () => coreRequest(nc, Subject.heartbeat('pnode-1'), '{}')),
        await serverRefuses('rogue: take over an ownership record', () => kvWrite(nc, Bucket.Owners, ownerKey(dep, 1), JSON.stringify({ pnode: 'rogue', epoch: 999, assignedAt: new Date().toISOString() }))),
        await serverRefuses('rogue: record itself as an epoch owner', () => kvWrite(nc, Bucket.Epochs, `${dep}.1.999`, JSON.stringify({ pnode: 'rogue', publicKey: rogue.signer.publicKey }))),
        await serverRefuses('rogue: rewrite the deployment', () => kvWrite(nc, Bucket.Deployments, dep, '{}')),
        await serverRefuses("rogue: another PNode's member record", () => kvWrite(nc, Bucket.Members, 'pnode-1', '{}')),
        await serverRefuses('rogue: the supervisor\'s events', () => coreRequest(nc, Subject.events('supervisor'), '{}')),
      );
    } finally {
      await nc.close();
    }
    const refused = attacks.filter((a) => a.refused).length;
    ctx.log(`  rogue-pnode: ${refused} of ${attacks.length} attempts refused; ${injected} forged or junk messages sent (each must be rejected)`);
    return { kind: this.kind, target: 'rogue', atStep: fault.atStep, at, healedAt: Date.now(), expectDead: [], injectedMessages: injected, attacks, detail: `${refused}/${attacks.length} refused, ${injected} messages rejected by signature` };
  },
};
