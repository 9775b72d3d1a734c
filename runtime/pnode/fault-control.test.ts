/**
 * The slow-PNode hook: a PNode answers fault-control requests only when started with
 * fault injection on (DCNR_FAULT_INJECTION=1 in its environment); it validates them.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '@nats-io/transport-node';
import '../../actors/index.js';
import { cleanup, setup } from '../../test/helpers/nats.js';
import { createKernels } from '../kernels/index.js';
import { startPNode } from './pnode.js';
import { Subject, type FaultControlReply } from '../protocol.js';

test('without fault injection nobody answers; with it, the knobs are set and bad requests refused', async () => {
  const { ns, nc } = await setup();
  const kernels = await createKernels();
  const c1 = await connect({ servers: ns.url });
  const c2 = await connect({ servers: ns.url });
  const plain = await startPNode({ nc: c1, name: 'plain', kernels, faultInjection: false });
  const faulty = await startPNode({ nc: c2, name: 'faulty', kernels, faultInjection: true });
  try {
    await nc.request(Subject.faultControl('plain'), JSON.stringify({ messageDelayMs: 50 }), { timeout: 1000 }).then(
      () => assert.unreachable('a PNode without fault injection answered'),
      (err: Error) => assert.match(String(err.message), /no responders|503|timeout/i),
    );
    const ask = async (body: string) => (await nc.request(Subject.faultControl('faulty'), body, { timeout: 5000 })).json<FaultControlReply>();
    assert.equal(await ask(JSON.stringify({ messageDelayMs: 25 })), { ok: true, pnode: 'faulty', messageDelayMs: 25, kernelSlowdown: 1, loopBlockMs: 0, corruptGradients: 1 });
    assert.equal(await ask(JSON.stringify({ kernelSlowdown: 3, loopBlockMs: 20 })), { ok: true, pnode: 'faulty', messageDelayMs: 25, kernelSlowdown: 3, loopBlockMs: 20, corruptGradients: 1 }, 'a request changes only what it names');
    for (const [body, error] of [
      [{ messageDelayMs: -1 }, /messageDelayMs must be a number in \[0, 60000\]/],
      [{ kernelSlowdown: 0.5 }, /kernelSlowdown must be a number in \[1, 100\]/],
      [{ loopBlockMs: 451 }, /loopBlockMs must be a number in \[0, 450\]/],
      [{ loopBlockMs: '5' }, /loopBlockMs must be a number/],
      [{}, /at least one of messageDelayMs, kernelSlowdown, loopBlockMs, corruptGradients/],
      [{ slowdown: 2 }, /slowdown/],
    ] as const) {
      const bad = await ask(JSON.stringify(body));
      assert.is(bad.ok, false, JSON.stringify(body));
      assert.match(bad.error!, error);
      assert.equal([bad.messageDelayMs, bad.kernelSlowdown, bad.loopBlockMs], [25, 3, 20], 'a refused request changes nothing');
    }
    const garbage = await ask('{nope');
    assert.is(garbage.ok, false);
    assert.equal(await ask(JSON.stringify({ messageDelayMs: 0, kernelSlowdown: 1, loopBlockMs: 0 })), { ok: true, pnode: 'faulty', messageDelayMs: 0, kernelSlowdown: 1, loopBlockMs: 0, corruptGradients: 1 });
  } finally {
    await plain.stop();
    await faulty.stop();
    await c1.close();
    await c2.close();
    await cleanup(ns, nc);
  }
});

test.run();
