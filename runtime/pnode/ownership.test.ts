/**
 * Handovers through the ownership bucket, with real actor hosts on a real nats-server.
 *
 * The chained handover: a VNode is moved A → B (a drain) and, while B still waits for
 * A's last checkpoint, on to C (B is drained too). B never ran it; C must not restore
 * before A let go, and must start from the checkpoint A released with. (Before: B said
 * "released" at once, C restored an older checkpoint while A still ran — nothing lost,
 * the epoch fences A, but the move replayed work instead of handing it over; seen in
 * CI as degrading-pnode's "moved VNodes did not start from the checkpoint they were
 * released with".)
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import '../../actors/index.js';
import { cleanup, setup } from '../../test/helpers/nats.js';
import { waitFor } from '../../test/helpers/wait.js';
import { ActorHost, type HostEvent } from '../actor-host.js';
import { assignOwner, openBuckets, subscribeClusterEvents, writeDeployment } from '../cluster-state.js';
import { createKernels } from '../kernels/index.js';
import { ensureDeploymentStreams } from '../mailbox.js';
import { BUILTIN_MODELS, resolveModel } from '../model.js';
import { Subject, type ClusterEvent } from '../protocol.js';
import { StateStore } from '../state-store.js';
import { followOwnership, type Ownership } from './ownership.js';

test('a VNode moved on while its new owner still waits for the old one: the next owner waits for the old one too', async () => {
  const { ns, nc } = await setup();
  const following: Ownership[] = [];
  const hosts: ActorHost[] = [];
  // A lets go only when the test says so: a slow owner finishing its last checkpoint.
  let letGo!: () => void;
  const gate = new Promise<void>((r) => (letGo = r));
  try {
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const buckets = await openBuckets(nc);
    const store = new StateStore(buckets.state);
    const kernels = await createKernels();
    const model = resolveModel({ ...BUILTIN_MODELS['mnist-mlp'], name: 'chain' });
    await writeDeployment(buckets.deployments, { spec: model.spec, seed: 1, batch: 2, steps: 10, createdAt: new Date().toISOString() });
    await ensureDeploymentStreams(jsm, model.spec.name);

    const order: string[] = [];
    const seen: ClusterEvent[] = [];
    const events = subscribeClusterEvents(nc, (e) => {
      seen.push(e);
      if (e.type === 'released') order.push(`released by ${e.pnode}`);
    });
    const activations = new Map<string, HostEvent[]>();
    for (const id of ['A', 'B', 'C']) {
      const got: HostEvent[] = [];
      activations.set(id, got);
      const host = new ActorHost({ nc, js, jsm, store, kernels, pnode: id, onEvent: (e) => void (e.type === 'activated' && (got.push(e), order.push(`activated on ${id}`))) });
      hosts.push(host);
      const release = host.release.bind(host);
      if (id === 'A') host.release = async (d, i) => (await gate, release(d, i));
      following.push(
        await followOwnership({
          nc, id, owners: buckets.owners, deployments: buckets.deployments, host, maxVNodes: 8,
          emit: (e) => nc.publish(Subject.events(id), JSON.stringify(e)),
          log: () => {},
          reject: () => {},
        }),
      );
    }

    const name = model.spec.name;
    await assignOwner(buckets.owners, name, 1, 'A');
    await waitFor('A hosts it', () => (activations.get('A')?.length ?? 0) === 1);
    await assignOwner(buckets.owners, name, 1, 'B', { handover: 'A' });
    await new Promise((r) => setTimeout(r, 200)); // B has seen its record and waits for A
    await assignOwner(buckets.owners, name, 1, 'C', { handover: 'B' });
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(activations.get('C'), [], 'C waits while A has not let go');
    assert.not.ok(order.includes('released by B'), 'B says it released only once A did');

    letGo();
    await waitFor('C hosts it', () => (activations.get('C')?.length ?? 0) === 1, 10_000);
    const fromA = seen.find((e) => e.type === 'released' && e.pnode === 'A');
    assert.ok(fromA?.type === 'released' && fromA.revision !== undefined, 'A released with its checkpoint');
    const onC = activations.get('C')![0];
    assert.ok(onC.type === 'activated');
    assert.is(onC.restoredRevision, fromA.revision, 'C started from the checkpoint A released with');
    assert.equal(activations.get('B'), [], 'B never ran it');
    assert.equal(order, ['activated on A', 'released by A', 'released by B', 'activated on C']);
    events.unsubscribe();
  } finally {
    letGo();
    for (const f of following) await f.stop();
    for (const h of hosts) await h.stopAll();
    await cleanup(ns, nc);
  }
});

test.run();
