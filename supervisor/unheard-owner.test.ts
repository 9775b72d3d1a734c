/**
 * A PNode that died while no supervisor watched (killed before this supervisor started,
 * or during its start-up grace) is never heard: the supervisor declares it dead once its
 * grace is over, moves its VNodes, and reports the recovery — as for a death it saw.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import '../actors/index.js';
import { assignOwner, openBuckets, writeDeployment } from '../runtime/cluster-state.js';
import { createKernels } from '../runtime/kernels/index.js';
import { ensureDeploymentStreams } from '../runtime/mailbox.js';
import { BUILTIN_MODELS, resolveModel } from '../runtime/model.js';
import { startPNode, type PNode } from '../runtime/pnode/pnode.js';
import { Subject, type ClusterEvent } from '../runtime/protocol.js';
import { parseClusterEvent } from '../runtime/records.js';
import { cleanup, setup } from '../test/helpers/nats.js';
import { createPlacement } from './placement/index.js';
import { startSupervisor } from './supervisor.js';

test('owners never heard during the grace are declared dead after it; their VNodes move and the recovery is reported', async () => {
  const { ns, nc } = await setup();
  const conns: NatsConnection[] = [];
  let pnode: PNode | undefined;
  const events: ClusterEvent[] = [];
  const sub = nc.subscribe(Subject.eventsAll, {
    callback: (_e, m) => {
      const e = parseClusterEvent(m.data);
      if (e.ok) events.push(e.value);
    },
  });
  const supervisor = { stop: async () => {} };
  try {
    const model = resolveModel({ ...BUILTIN_MODELS['mnist-mlp'], name: 'orphaned' });
    const buckets = await openBuckets(nc);
    await writeDeployment(buckets.deployments, {
      spec: model.spec,
      seed: 1,
      batch: 4,
      steps: 2,
      createdAt: new Date().toISOString(),
      shapes: model.vnodes.map((v) => ({ inFeatures: v.inFeatures, outFeatures: v.outFeatures })),
    });
    await ensureDeploymentStreams(await jetstreamManager(nc), 'orphaned');
    // Every VNode owned by a PNode that is gone before any supervisor runs.
    for (const v of model.vnodes) await assignOwner(buckets.owners, 'orphaned', v.index, 'pnode-gone');
    const c = await connect({ servers: ns.url });
    conns.push(c);
    pnode = await startPNode({ nc: c, name: 'pnode-alive', kernels: await createKernels() });
    Object.assign(supervisor, await startSupervisor({ nc, detectMs: 500, placement: createPlacement('round-robin') }));
    const deadline = Date.now() + 20_000;
    while (!events.some((e) => e.type === 'recovered' && e.pnode === 'pnode-gone') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const dead = events.filter((e) => e.type === 'dead' && e.pnode === 'pnode-gone');
    assert.is(dead.length, 1, 'declared dead once');
    const moved = events.filter((e): e is Extract<ClusterEvent, { type: 'assigned' }> => e.type === 'assigned' && e.from === 'pnode-gone');
    assert.is(moved.length, model.vnodes.length, 'every VNode it owned moved');
    assert.ok(moved.every((e) => e.pnode === 'pnode-alive'));
    const recovered = events.find((e) => e.type === 'recovered' && e.pnode === 'pnode-gone') as Extract<ClusterEvent, { type: 'recovered' }> | undefined;
    assert.ok(recovered, 'the recovery is reported');
    assert.is(recovered!.vnodes.length, model.vnodes.length);
    assert.not.ok(events.some((e) => e.type === 'dead' && e.pnode === 'pnode-alive'), 'the live PNode is not touched');
  } finally {
    sub.unsubscribe();
    await pnode?.stop();
    for (const c of conns) await c.close();
    await supervisor.stop();
    await cleanup(ns, nc);
  }
});

test.run();
