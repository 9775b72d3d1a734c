/**
 * `hostile-client`: an outsider, mid-training, in three tries.
 *   1. No credentials, then credentials of another network: it cannot connect.
 *   2. Stolen observer credentials: it reads, but every write — into a mailbox, over
 *      ownership, state, deployments or epochs, a heartbeat, a drain, a revocation — is
 *      refused by nats-server.
 *   3. A forged sender: a trainer of its own (valid credentials, not this run's) feeds
 *      signed batches into the first VNode's mailbox as `trainer`. nats-server lets them
 *      in; the receiving VNode rejects each (its signer is not the deployment's
 *      trainerKey), so they are dead-lettered and counted, and training is bit-identical.
 */
import { createAuthority, writeCreds } from '../../runtime/security/authority.js';
import { Bucket, ownerKey, Subject, messageId } from '../../runtime/protocol.js';
import { rmSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { attackerCreds, coreRequest, kvWrite, publishTensor, serverRefuses, tryConnect } from './attacks.js';
import type { Attack, FaultKind } from './types.js';

export const hostileClient: FaultKind = {
  kind: 'hostile-client',
  description: 'an outsider without credentials, then with stolen observer credentials, then a forged trainer: every attempt refused or rejected',
  async inject(ctx, fault) {
    if (!ctx.authority) throw new Error('hostile-client needs auth on (do not pass --no-auth)');
    const at = Date.now();
    const url = ctx.cluster.url;
    const attacks: Attack[] = [];
    const dep = ctx.deployment;

    // A trainer of its own: let in by nats-server, stopped by the signature check. First,
    // while VNode 0 is still running: the refused attempts below take seconds, and a
    // short run can end within them (then nothing would ever read these feeds).
    const impostor = await attackerCreds(ctx.authority, 'trainer', 'impostor-trainer');
    const tnc = await tryConnect(url, impostor.creds);
    if (typeof tnc === 'string') throw new Error(`hostile-client: the impostor trainer did not connect: ${tnc}`);
    const forged = fault.count ?? 5;
    try {
      for (let i = 0; i < forged; i++) {
        const seq = fault.atStep + 2 + i;
        await publishTensor(tnc, { deployment: dep, to: 0, kind: 'fwd', port: 'fwd', seq, epoch: 0, from: 'trainer', rows: 4, cols: ctx.model.inputFeatures, signer: impostor.signer, msgID: `${messageId(dep, 0, 'fwd', 'fwd', seq)}.forged` });
      }
    } finally {
      await tnc.close();
    }

    const anon = await tryConnect(url);
    attacks.push({ name: 'connect without credentials', refused: typeof anon === 'string', detail: typeof anon === 'string' ? `refused: ${anon}` : 'connected' });
    if (typeof anon !== 'string') await anon.close();
    const otherDir = join(tmpdir(), `dcnr-foreign-${process.pid}-${Date.now()}`);
    const foreign = readFileSync(await writeCreds(createAuthority(otherDir), 'supervisor', 'foreign'), 'utf8');
    rmSync(otherDir, { recursive: true, force: true });
    const alien = await tryConnect(url, foreign);
    attacks.push({ name: "connect with another network's credentials", refused: typeof alien === 'string', detail: typeof alien === 'string' ? `refused: ${alien}` : 'connected' });
    if (typeof alien !== 'string') await alien.close();

    const stolen = await attackerCreds(ctx.authority, 'observer', 'stolen-observer');
    const obs = await tryConnect(url, stolen.creds);
    if (typeof obs === 'string') throw new Error(`hostile-client: the stolen observer credentials did not connect: ${obs}`);
    try {
      const seq = fault.atStep + 3;
      const v1 = ctx.model.vnodes[1];
      attacks.push(
        await serverRefuses('observer: a tensor into a mailbox', () =>
          publishTensor(obs, { deployment: dep, to: 1, kind: 'fwd', port: 'fwd', seq, epoch: 1, from: `${dep}.0.x`, rows: 4, cols: v1.inFeatures, msgID: messageId(dep, 1, 'fwd', 'fwd', seq) }),
        ),
        await serverRefuses('observer: overwrite an ownership record', () => kvWrite(obs, Bucket.Owners, ownerKey(dep, 1), JSON.stringify({ pnode: 'stolen-observer', epoch: 999, assignedAt: new Date().toISOString() }))),
        await serverRefuses("observer: overwrite a VNode's state meta", () => kvWrite(obs, Bucket.State, `${dep}.1.meta`, '{}')),
        await serverRefuses('observer: rewrite the deployment', () => kvWrite(obs, Bucket.Deployments, dep, '{}')),
        await serverRefuses('observer: claim an epoch', () => kvWrite(obs, Bucket.Epochs, `${dep}.1.999`, '{}')),
        await serverRefuses("observer: a PNode's heartbeat", () => coreRequest(obs, Subject.heartbeat('pnode-1'), '{}')),
        await serverRefuses('observer: drain a PNode', () => coreRequest(obs, Subject.control('drain'), JSON.stringify({ pnode: 'pnode-1' }))),
        await serverRefuses('observer: revoke a PNode', () => coreRequest(obs, Subject.control('revoke'), JSON.stringify({ pnode: 'pnode-1' }))),
      );
    } finally {
      await obs.close();
    }

    const refused = attacks.filter((a) => a.refused).length;
    ctx.log(`  hostile-client: ${refused} of ${attacks.length} attempts refused by nats-server; ${forged} forged trainer feeds sent (each must be rejected)`);
    return { kind: this.kind, target: 'outsider', atStep: fault.atStep, at, healedAt: Date.now(), expectDead: [], injectedMessages: forged, attacks, detail: `${refused}/${attacks.length} refused by nats-server, ${forged} forged feeds` };
  },
};
