/**
 * The health sampler measures what really slows a PNode: an event loop held busy shows
 * as loop lag, kernels made slower show as drift against the PNode's own baseline, and
 * the re-measured capacity follows them. The slowdowns are the real fault-control knobs
 * (fault-control.ts), not numbers handed to the sampler; the assertions are lower
 * bounds that noise cannot break (a busy machine only makes lag and drift larger).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanup, setup } from '../../test/helpers/nats.js';
import { waitFor } from '../../test/helpers/wait.js';
import { createKernels } from '../kernels/index.js';
import { Subject, type FaultControlReply } from '../protocol.js';
import { serveFaultControl } from './fault-control.js';
import { startHealthSampler } from './health.js';

test('a calm PNode: no drift, a plausible window, shares in [0, 1]', async () => {
  const kernels = await createKernels('js');
  const h = startHealthSampler(kernels, { windowMs: 300, probeMs: 50 });
  try {
    assert.is(h.gflops(12.5), 12.5, 'the start-up figure until there are probes');
    await sleep(1200);
    const now = h.health();
    assert.ok(now.windowMs >= 250, `window ${now.windowMs} ms`);
    for (const k of ['gcShare', 'heapShare', 'freeMemShare'] as const) assert.ok(now[k] >= 0 && now[k] <= 1, `${k} ${now[k]}`);
    assert.ok(now.kernelDrift > 0 && now.kernelDrift < 2.5, `drift ${now.kernelDrift} on a calm PNode`);
    assert.ok(h.gflops(12.5) > 0 && h.gflops(12.5) !== 12.5, 're-measured capacity replaces the start-up one');
  } finally {
    h.stop();
  }
});

test('a held-up event loop shows as lag; slowed kernels as drift and a lower capacity', async () => {
  const { ns, nc } = await setup();
  const kernels = await createKernels('js');
  const faults = serveFaultControl(nc, 'sick', () => {});
  const h = startHealthSampler(faults.slowed(kernels), { windowMs: 1000, probeMs: 50 });
  const set = async (req: object) => {
    const r = (await nc.request(Subject.faultControl('sick'), JSON.stringify(req), { timeout: 5000 })).json<FaultControlReply>();
    assert.ok(r.ok, r.error);
  };
  try {
    await sleep(1500); // the baseline: the first five probes, and more for the capacity median
    await waitFor('the baseline probes', () => h.gflops(0) > 0, 30_000);
    const healthyGflops = h.gflops(0);
    await set({ kernelSlowdown: 20 });
    // a slow machine takes longer to fill the windows: wait for the signal, never for a time
    await waitFor('drift ≥ 4 after kernels got 20× slower', () => h.health().kernelDrift >= 4, 30_000);
    await waitFor(`capacity below half of ${healthyGflops} GFLOP/s`, () => h.gflops(0) < healthyGflops / 2, 30_000);

    await set({ kernelSlowdown: 1, loopBlockMs: 300 });
    await waitFor('loop lag ≥ 200 ms with the loop busy 300 ms in every 500', () => h.health().loopLagMs >= 200, 30_000);
  } finally {
    h.stop();
    faults.stop();
    await cleanup(ns, nc);
  }
});

test.run();
