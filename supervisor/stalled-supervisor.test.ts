/**
 * A supervisor that is itself stalled (descheduled on a loaded machine, here SIGSTOPped
 * for real) must not take its own deafness for the PNodes' silence: when it runs again,
 * the heartbeats that queued up meanwhile are read before anyone is judged. PNodes that
 * kept beating are never declared dead (and so never "join" a second time).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startLocalCluster } from '../cluster/local-cluster.js';
import { connectNats } from '../cluster/process.js';
import { waitForPNodes } from '../cluster/view.js';
import { subscribeClusterEvents } from '../runtime/cluster-state.js';
import type { ClusterEvent } from '../runtime/protocol.js';
import { tempDir } from '../test/helpers/nats.js';
import { rmSync } from 'node:fs';

test('a supervisor stalled longer than its detection timeout declares no beating PNode dead', async () => {
  const dir = tempDir('dcnr-stalled-');
  const cluster = await startLocalCluster({ pnodes: 2, storeDir: dir, detectMs: 1000 });
  const nc = await connectNats(cluster.url, 'stalled-test');
  const events: ClusterEvent[] = [];
  const sub = subscribeClusterEvents(nc, (e) => events.push(e));
  try {
    await waitForPNodes(nc, 2);
    // Both are members now: a `joined` stamped after this is a PNode joining a second time
    // (its first join may have been announced before our subscription started).
    const bothJoinedAt = Date.now();
    await new Promise((r) => setTimeout(r, 1500)); // past the supervisor's start-up grace
    const supervisor = cluster.procs.get('supervisor')!;
    for (let round = 0; round < 3; round++) {
      supervisor.kill('SIGSTOP');
      await new Promise((r) => setTimeout(r, 2500)); // 2.5× the detection timeout
      supervisor.kill('SIGCONT');
      await new Promise((r) => setTimeout(r, 1000));
    }
    await nc.flush();
    const dead = events.filter((e) => e.type === 'dead');
    assert.equal(dead, [], 'no PNode declared dead');
    assert.equal(events.filter((e) => e.type === 'joined' && e.at > bothJoinedAt), [], 'no PNode joined a second time');
  } finally {
    sub.unsubscribe();
    await nc.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
