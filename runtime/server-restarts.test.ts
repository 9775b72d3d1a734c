import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '@nats-io/transport-node';
import { cleanup, setup } from '../test/helpers/nats.js';
import { openBuckets } from './cluster-state.js';
import { restartsMayLoseWrites, watchServerRestarts, type ServerRestart } from './server-restarts.js';

test('a SIGKILLed nats-server started again on its store is seen as a restart; an unreplicated store may have lost writes', async () => {
  const { ns, nc: admin } = await setup();
  let server = ns;
  const nc = await connect({ servers: ns.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  try {
    await openBuckets(nc);
    assert.ok(await restartsMayLoseWrites(nc), 'an R1 state bucket on one server may lose acknowledged writes');
    process.env.DCNR_NATS_SYNC = 'always';
    assert.not.ok(await restartsMayLoseWrites(nc), 'not when the operator says the server syncs every write');
    delete process.env.DCNR_NATS_SYNC;

    const seen: ServerRestart[] = [];
    const watch = watchServerRestarts(nc, (r) => seen.push(r));
    const before = nc.info?.server_id;
    await ns.kill();
    server = await ns.restart();
    for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    watch.stop();
    assert.is(seen.length, 1, 'one restart seen');
    assert.is(seen[0].from, before);
    assert.is(seen[0].to, nc.info?.server_id);
    assert.is.not(seen[0].from, seen[0].to);
  } finally {
    await nc.close().catch(() => {});
    await cleanup(server, admin);
  }
});

test.run();
