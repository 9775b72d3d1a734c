/**
 * Heartbeats from their own thread (heartbeat.ts): a main loop held up by the PNode's
 * own work (here: this test's thread, busy for real) is not silence, and one held up
 * past `hangMs` is — the beats stop, as for a hung process.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '@nats-io/transport-node';
import { cleanup, setup } from '../../test/helpers/nats.js';
import { Subject, type Heartbeat } from '../protocol.js';
import { startHeartbeats } from './heartbeat.js';

const busy = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};
const heartbeat = (pnode: string): Heartbeat => ({
  pnode,
  pid: process.pid,
  at: Date.now(),
  capacity: { cores: 1, memoryMb: 1, kernelMode: 'js', gflops: 1, maxVNodes: 1, types: [] },
  vnodes: [],
  counters: { fencedWrites: 0, rejected: 0, restarts: 0, escalations: 0, activations: 0 },
});

/** Beats of `pnode` (their send stamps, the thread's clock) while this thread is held `blockMs`. */
async function beatsDuringBlock(o: { hangMs?: number; link: boolean; blockMs: number }): Promise<{ during: number[]; after: number }> {
  const { ns, nc } = await setup();
  const other = await connect({ servers: ns.url }); // the subscriber: its callbacks run after the block
  const stamps: number[] = [];
  const sub = other.subscribe(Subject.heartbeat('p1'), { callback: (_e, m) => void stamps.push(m.json<Heartbeat>().at) });
  await other.flush();
  const hb = await startHeartbeats({ nc, id: 'p1', periodMs: 100, hangMs: o.hangMs, link: o.link ? { servers: [ns.url] } : undefined, heartbeat: () => heartbeat('p1'), log: () => {} });
  try {
    await new Promise((r) => setTimeout(r, 400));
    const from = Date.now();
    busy(o.blockMs);
    const to = Date.now();
    await new Promise((r) => setTimeout(r, 500));
    await other.flush();
    return { during: stamps.filter((t) => t > from && t < to).map((t) => t - from), after: stamps.filter((t) => t > to).length };
  } finally {
    await hb.stop();
    sub.unsubscribe();
    await other.close();
    await cleanup(ns, nc);
  }
}

test('from their thread, beats go on while the main loop is held (and without it they would not)', async () => {
  const threaded = await beatsDuringBlock({ link: true, blockMs: 1500 });
  assert.ok(threaded.during.length >= 8, `beats during a 1.5 s block at 100 ms: ${threaded.during.join(' ')}`);
  assert.ok(threaded.after > 0, 'and after it');
  const main = await beatsDuringBlock({ link: false, blockMs: 1500 });
  assert.is(main.during.length, 0, 'main-thread beats stop while it is held');
  assert.ok(main.after > 0, 'and resume after it');
});

test('a main loop held past hangMs stops the beats; they resume when it runs again', async () => {
  const r = await beatsDuringBlock({ link: true, blockMs: 2000, hangMs: 600 });
  assert.ok(r.during.length > 0, 'beats until the hang limit');
  assert.ok(Math.max(...r.during) < 900, `none well after hangMs: ${r.during.join(' ')}`);
  assert.ok(r.after > 0, 'beating again once the loop runs');
});

test('a thread that cannot connect is a clear error', async () => {
  const { ns, nc } = await setup();
  try {
    await startHeartbeats({ nc, id: 'p1', periodMs: 100, link: { servers: ['127.0.0.1:1'] }, heartbeat: () => heartbeat('p1'), log: () => {} }).then(
      () => assert.unreachable('started'),
      (err: Error) => assert.match(err.message, /heartbeat thread of p1 could not connect to 127\.0\.0\.1:1/),
    );
  } finally {
    await cleanup(ns, nc);
  }
});

test.run();
