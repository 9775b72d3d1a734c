/**
 * What does a SIGKILLed single nats-server lose of the KV writes it acknowledged? DCNR's
 * checkpoint pattern without DCNR: W writers, each in a loop putting 4 fresh blob keys
 * (new subjects), then writing its one meta key (the same subject every time: CAS
 * `update`, or plain `put` with `--put`) naming them, then deleting the previous blobs.
 * After `--run-ms` the server is SIGKILLed and started again on its store; every writer's
 * last acknowledged meta and every blob it names is then read back.
 *
 * On nats-server 2.9.10 (measured 2026-12-07, 64 KiB blobs, 20 writers, 5 s): every run
 * lost metas acknowledged 2–72 ms before the kill (1 to 20 of 20 keys), with `update`
 * and with `put`, at history 1 and at history 5; the key then reads as missing — no older
 * revision either (at history 5 one far older revision came back). Blobs written in the
 * same milliseconds, before and after the lost metas, all survived: what goes is a
 * write that replaces a subject's message. Deleting the store's `.idx`/`.fss` files before
 * the restart (a rebuild from the block files) did not bring them back.
 * docs/nats-durability.md says what DCNR does about it.
 *
 *   node --import tsx scripts/nats-kv-kill-repro.mts [--writers 20] [--blob-bytes 65536] [--run-ms 5000] [--history 1] [--put] [--runs 3]
 */
import { parseArgs } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { startNatsServer } from '../cluster/nats-server.js';

const { values: a } = parseArgs({
  options: {
    writers: { type: 'string', default: '20' },
    'blob-bytes': { type: 'string', default: '65536' },
    'run-ms': { type: 'string', default: '5000' },
    history: { type: 'string', default: '1' },
    put: { type: 'boolean', default: false },
    runs: { type: 'string', default: '3' },
  },
});
const writers = Number(a.writers);
const payload = new Uint8Array(Number(a['blob-bytes']));
const te = new TextEncoder();

async function once(run: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'nats-kv-kill-'));
  const server = await startNatsServer({ storeDir: dir });
  const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  const kv = await new Kvm(nc).create('repro', { history: Number(a.history) });
  const acked = new Map<number, { revision: number; blobs: string[]; at: number }>();
  let stop = false;
  const loops = Array.from({ length: writers }, async (_, w) => {
    let prev: { revision: number; blobs: string[] } | null = null;
    for (let v = 1; !stop; v++) {
      try {
        const blobs = Array.from({ length: 4 }, (_, b) => `w${w}.b${v}_${b}`);
        await Promise.all(blobs.map((b) => kv.put(b, payload)));
        const meta = te.encode(JSON.stringify({ v, blobs }));
        const key = `w${w}.meta`;
        const revision: number = a.put ? await kv.put(key, meta) : prev ? await kv.update(key, meta, prev.revision) : await kv.create(key, meta);
        if (!stop) acked.set(w, { revision, blobs, at: performance.now() });
        const old = prev;
        prev = { revision, blobs };
        if (old) await Promise.all(old.blobs.map((b) => kv.delete(b)));
      } catch {
        await sleep(50);
      }
    }
  });
  await sleep(Number(a['run-ms']));
  stop = true;
  const last = new Map(acked);
  const killedAt = performance.now();
  await server.kill();
  await Promise.allSettled(loops);
  await nc.close();
  const again = await server.restart();
  const nc2 = await connect({ servers: again.url });
  const kv2 = await new Kvm(nc2).open('repro');
  const lost: string[] = [];
  let blobsMissing = 0;
  for (const [w, x] of last) {
    const e = await kv2.get(`w${w}.meta`);
    if (!e || e.operation !== 'PUT' || e.revision !== x.revision) {
      lost.push(`w${w} (rev ${x.revision}, acked ${(killedAt - x.at).toFixed(0)} ms before the kill): now ${e ? `${e.operation} rev ${e.revision}` : 'missing'}`);
    }
    for (const b of x.blobs) {
      const blob = await kv2.get(b);
      if (!blob || blob.operation !== 'PUT') blobsMissing++;
    }
  }
  console.log(`run ${run}: ${lost.length} of ${last.size} acknowledged metas lost, ${blobsMissing} of ${last.size * 4} blobs they name missing`);
  for (const l of lost) console.log(`  ${l}`);
  await nc2.close();
  await again.stop();
  rmSync(dir, { recursive: true, force: true });
}

for (let r = 1; r <= Number(a.runs); r++) await once(r);
