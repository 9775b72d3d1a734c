/**
 * Does a 3-node JetStream cluster (R3 work-queue stream) lose acknowledged messages
 * when a follower and then the stream leader are SIGKILLed and restarted? DCNR's
 * mailbox pattern, without DCNR: producers publish numbered messages with Nats-Msg-Id
 * (re-sent under the same id after a timeout); one durable consumer per subject takes
 * them in order and acks them in batches (as a checkpoint does); a consumer that errs is
 * deleted and re-created (as an activation does). At the end every acknowledged
 * publish must have been delivered, in order, or still be in the stream.
 *
 * `--churn MS`: every MS one subject's consumer (in turn) is dropped and re-created as
 * an actor restart does (restore the checkpoint, delete the consumers filtering on its
 * subject, add a new one), whether or not anything failed; `--no-kill` leaves every
 * server running (consumer churn alone). Server advisories of terminated or deleted
 * messages are counted.
 *
 *   node --import tsx scripts/nats-wq-repro.mts [--messages 3000] [--subjects 6] [--runs 1] [--churn 500] [--no-kill]
 *
 * Prints one JSON line per run: { run, acked, delivered, lost: [[subject, n], …], serverVersion }.
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JsMsg } from '@nats-io/jetstream';
import { connect, headers } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { startNatsCluster } from '../cluster/nats-server.js';

const { values } = parseArgs({ options: { messages: { type: 'string', default: '3000' }, subjects: { type: 'string', default: '6' }, runs: { type: 'string', default: '1' }, 'ack-every': { type: 'string', default: '10' }, churn: { type: 'string', default: '0' }, 'no-kill': { type: 'boolean', default: false } } });
const CHURN_MS = Number(values.churn);
const N = Number(values.messages);
const S = Number(values.subjects);
const ACK_EVERY = Number(values['ack-every']);
const NANOS = 1_000_000;

async function once(run: number) {
  const dir = mkdtempSync(join(tmpdir(), 'dcnr-wq-repro-'));
  const cluster = await startNatsCluster({ storeDir: dir, nodes: 3 });
  const nc = await connect({ servers: cluster.urls, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc, { timeout: 5000 });
  const stream = 'REPRO';
  await jsm.streams.add({ name: stream, subjects: ['repro.>'], retention: RetentionPolicy.Workqueue, storage: StorageType.File, num_replicas: 3, duplicate_window: 120_000 * NANOS });
  // Each consumer's checkpoint (the next index it expects) in an R3 KV bucket, written by CAS before its acks.
  const kv = await new Kvm(nc).create('REPRO_STATE', { replicas: 3, history: 1 });
  const acked = Array.from({ length: S }, () => 0);
  const next = Array.from({ length: S }, () => 0);
  const reverted: { s: number; committed: number; restored: number }[] = [];
  const committed = Array.from({ length: S }, () => 0);
  const redeliveredOutOfOrder = Array.from({ length: S }, () => 0);
  let stop = false;
  const churn = Array.from({ length: S }, () => false);
  let churned = 0;
  const advisories: Record<string, number> = {};
  nc.subscribe('$JS.EVENT.ADVISORY.>', {
    callback: (_e, m) => {
      const kind = m.subject.split('.').slice(3, 5).join('.');
      if (!/CONSUMER\.(CREATED|DELETED)|API/.test(kind)) advisories[kind] = (advisories[kind] ?? 0) + 1;
    },
  });
  const churnTimer = CHURN_MS > 0 ? setInterval(() => void (churn[churned++ % S] = true), CHURN_MS) : undefined;

  // Producers: in order per subject, up to 16 in flight, each re-sent under its id until acked.
  const produce = async (s: number) => {
    for (let i = 0; i < N && !stop; i++) {
      for (;;) {
        const h = headers();
        h.set('Nats-Msg-Id', `${s}-${i}`);
        try {
          await js.publish(`repro.${s}`, new TextEncoder().encode(String(i)), { headers: h });
          acked[s] = i + 1;
          break;
        } catch {
          await sleep(100);
        }
      }
      // Pace like a pipeline: never more than 64 ahead of the consumer.
      while (!stop && i - next[s] > 64) await sleep(5);
    }
  };

  // Consumers: take messages in order; ack in batches; re-create on error.
  const consume = async (s: number) => {
    const name = `c${s}`;
    let revision = 0;
    while (!stop && next[s] < N) {
      try {
        // Restore: the checkpoint says where we are (as a restored VNode reads its state).
        const e = await kv.get(`c${s}`);
        const restored = e && e.operation === 'PUT' ? Number(e.string()) : 0;
        revision = e?.revision ?? 0;
        if (restored < committed[s]) reverted.push({ s, committed: committed[s], restored });
        next[s] = restored;
        for await (const info of jsm.consumers.list(stream)) if (info.config.filter_subject === `repro.${s}`) await jsm.consumers.delete(stream, info.name);
        await jsm.consumers.add(stream, { durable_name: name, filter_subject: `repro.${s}`, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ack_wait: 30_000 * NANOS, max_ack_pending: 400, max_deliver: -1 });
        const c = await js.consumers.get(stream, name);
        const msgs = await c.consume({ max_messages: 64 });
        const held: JsMsg[] = [];
        let idle = Date.now();
        const watchdog = setInterval(() => {
          if (Date.now() - idle > 10_000 || churn[s]) void msgs.close();
        }, 500);
        try {
          for await (const m of msgs) {
            const i = Number(new TextDecoder().decode(m.data));
            if (i < next[s]) {
              m.ack(); // applied already (a redelivery)
              continue;
            }
            if (i > next[s]) {
              redeliveredOutOfOrder[s]++;
              continue; // not acked: comes back after ack_wait, or to the next consumer
            }
            next[s]++;
            idle = Date.now();
            held.push(m);
            if (held.length >= ACK_EVERY) {
              revision = revision === 0 ? await kv.create(`c${s}`, String(next[s])) : await kv.update(`c${s}`, String(next[s]), revision);
              committed[s] = next[s];
              for (const x of held.splice(0)) x.ack();
            }
            if (next[s] >= N) break;
          }
        } finally {
          clearInterval(watchdog);
          churn[s] = false;
        }
      } catch {
        await sleep(200);
      }
    }
  };

  const work = [...Array(S).keys()].flatMap((s) => [produce(s), consume(s)]);
  // The fault, as kill-nats-node: once a tenth is through, SIGKILL a follower of the stream, restart it, then the leader.
  const fault = (async () => {
    if (values['no-kill']) return;
    while (Math.min(...next) < N / 10) await sleep(50);
    const leaderName = async () => (await jsm.streams.info(stream)).cluster?.leader;
    const idx = (name: string | undefined) => cluster.servers.findIndex((x, j) => `nats-${j + 1}` === name);
    const leader = idx(await leaderName());
    for (const victim of [(leader + 1) % 3, -1]) {
      const v = victim >= 0 ? victim : idx(await leaderName());
      const old = cluster.servers[v];
      await old.kill();
      await sleep(3000);
      cluster.servers[v] = await old.restart();
      await sleep(3000);
    }
  })();
  await fault;
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline && next.some((n) => n < N)) await sleep(200);
  stop = true;
  clearInterval(churnTimer);
  const lost: [number, number][] = [];
  for (let s = 0; s < S; s++) if (next[s] < acked[s]) lost.push([s, next[s]]);
  const version = nc.info?.version;
  console.log(JSON.stringify({ run, acked: acked.reduce((a, b) => a + b, 0), delivered: next.reduce((a, b) => a + b, 0), stuckAt: lost, outOfOrder: redeliveredOutOfOrder, checkpointReverted: reverted, consumerRestarts: churned, advisories, serverVersion: version }));
  await Promise.race([Promise.all(work), sleep(3000)]);
  await nc.close().catch(() => {});
  await Promise.all(cluster.servers.map((x) => x.stop()));
  rmSync(dir, { recursive: true, force: true });
  return lost.length;
}

let failed = 0;
for (let r = 1; r <= Number(values.runs); r++) failed += (await once(r)) > 0 ? 1 : 0;
console.log(`${failed} of ${values.runs} runs lost an acknowledged message`);
process.exit(0);
