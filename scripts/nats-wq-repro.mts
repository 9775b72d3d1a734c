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
 * DCNR-like load (all off by default):
 * - `--rewind K`: a producer whose publish failed, and every producer after each server
 *   restart, goes back K messages and publishes them again under the same Nats-Msg-Id
 *   (as a restored actor re-sends its outputs since its checkpoint): duplicates of
 *   messages that may have been consumed, acked and so deleted from the work queue.
 * - `--payload MIN-MAX`: message sizes in bytes (e.g. 1024-32768).
 * - `--max-ack-pending N`, `--ack-wait MS`: consumer limits (defaults 400, 30000).
 * - `--nak MS`: a message after a gap is nak'ed with this delay (as DCNR puts it back
 *   until the gap fills) instead of waiting for ack_wait.
 * - `--restart-all`: after each server restart every consumer is re-created at once
 *   (as every VNode of a dead PNode restarts together).
 * - `--retention limits`: a limits stream instead of a work queue (a control: acked
 *   messages stay in the stream, so a restarted server rebuilds its whole dedupe table).
 * - `--minimal`: no load, a deterministic check instead: publish 10 messages with ids,
 *   consume and ack them (the work queue deletes them), SIGKILL and restart one follower,
 *   publish the same 10 ids again and one new message, then print each replica's stream
 *   state (stepping the leader down until every server has led). On nats-server 2.9.10 the
 *   restarted follower stores the 10 re-sent duplicates (its dedupe table was rebuilt from
 *   the messages still in its store, and the acked ones are gone) while the other two drop
 *   them: the replicas' sequences diverge. (`--retention limits` for the control.)
 * - `--check-replicas`: at the end, step the stream leader down a few times and print
 *   each replica's stream state (first/last seq, messages, per-subject counts): replicas
 *   that disagree have diverged.
 *
 *   node --import tsx scripts/nats-wq-repro.mts [--messages 3000] [--subjects 6] [--runs 1] [--churn 500] [--no-kill]
 *     [--rewind 20] [--payload 1024-32768] [--max-ack-pending 320] [--ack-wait 30000] [--restart-all] [--check-replicas]
 *
 * Prints one JSON line per run: { run, acked, delivered, lost: [[subject, n], …], serverVersion }.
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JsMsg } from '@nats-io/jetstream';
import { connect, headers } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { startNatsCluster } from '../cluster/nats-server.js';

const { values } = parseArgs({ options: { messages: { type: 'string', default: '3000' }, subjects: { type: 'string', default: '6' }, runs: { type: 'string', default: '1' }, 'ack-every': { type: 'string', default: '10' }, churn: { type: 'string', default: '0' }, 'no-kill': { type: 'boolean', default: false }, rewind: { type: 'string', default: '0' }, payload: { type: 'string', default: '' }, 'max-ack-pending': { type: 'string', default: '400' }, 'ack-wait': { type: 'string', default: '30000' }, 'restart-all': { type: 'boolean', default: false }, 'check-replicas': { type: 'boolean', default: false }, retention: { type: 'string', default: 'workqueue' }, minimal: { type: 'boolean', default: false }, nak: { type: 'string', default: '0' } } });
const NAK_MS = Number(values.nak);
const REWIND = Number(values.rewind);
const [PAY_MIN, PAY_MAX] = values.payload ? values.payload.split('-').map(Number) : [0, 0];
const MAX_ACK_PENDING = Number(values['max-ack-pending']);
const ACK_WAIT_MS = Number(values['ack-wait']);
/** The message body: its index, padded with spaces to a size between PAY_MIN and PAY_MAX (deterministic per message). */
function body(s: number, i: number): Uint8Array {
  const head = String(i);
  if (PAY_MAX <= 0) return new TextEncoder().encode(head);
  const size = PAY_MIN + (((s * 7919 + i * 104729) >>> 0) % Math.max(1, PAY_MAX - PAY_MIN + 1));
  return new TextEncoder().encode(head.padEnd(Math.max(size, head.length), ' '));
}
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
  await jsm.streams.add({ name: stream, subjects: ['repro.>'], retention: values.retention === 'limits' ? RetentionPolicy.Limits : RetentionPolicy.Workqueue, storage: StorageType.File, num_replicas: 3, duplicate_window: 120_000 * NANOS });
  // Each consumer's checkpoint (the next index it expects) in an R3 KV bucket, written by CAS before its acks.
  const kv = await new Kvm(nc).create('REPRO_STATE', { replicas: 3, history: 1 });
  const acked = Array.from({ length: S }, () => 0);
  const next = Array.from({ length: S }, () => 0);
  const reverted: { s: number; committed: number; restored: number }[] = [];
  const committed = Array.from({ length: S }, () => 0);
  const redeliveredOutOfOrder = Array.from({ length: S }, () => 0);
  let stop = false;
  const churn = Array.from({ length: S }, () => false);
  const misdelivered = Array.from({ length: S }, () => 0);
  let churned = 0;
  let restarts = 0; // server restarts so far: producers rewind after each (--rewind)
  let resent = 0;
  const serverLogs: string[] = []; // the killed servers' logs (a restart may start a new file)
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
    let seenRestarts = 0;
    let high = 0; // one past the highest index published so far
    for (let i = 0; i < N && !stop; i++) {
      if (REWIND > 0 && seenRestarts !== restarts) {
        seenRestarts = restarts;
        i = Math.max(0, i - REWIND);
      }
      for (;;) {
        const h = headers();
        h.set('Nats-Msg-Id', `${s}-${i}`);
        try {
          await js.publish(`repro.${s}`, body(s, i), { headers: h });
          if (i < high) resent++;
          high = Math.max(high, i + 1);
          acked[s] = Math.max(acked[s], i + 1);
          break;
        } catch {
          await sleep(100);
          if (REWIND > 0) i = Math.max(0, i - REWIND);
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
        await jsm.consumers.add(stream, { durable_name: name, filter_subject: `repro.${s}`, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ack_wait: ACK_WAIT_MS * NANOS, max_ack_pending: MAX_ACK_PENDING, max_deliver: -1 });
        const c = await js.consumers.get(stream, name);
        const msgs = await c.consume({ max_messages: 64 });
        const held: JsMsg[] = [];
        let idle = Date.now();
        const watchdog = setInterval(() => {
          if (Date.now() - idle > 10_000 || churn[s]) void msgs.close();
        }, 500);
        try {
          for await (const m of msgs) {
            if (m.subject !== `repro.${s}`) {
              misdelivered[s]++; // another consumer's message: never acked here (that would delete it)
              continue;
            }
            const i = parseInt(new TextDecoder().decode(m.data.subarray(0, 16)), 10);
            if (i < next[s]) {
              m.ack(); // applied already (a redelivery)
              continue;
            }
            if (i > next[s]) {
              redeliveredOutOfOrder[s]++;
              if (NAK_MS > 0) m.nak(NAK_MS);
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
      serverLogs.push(readFileSync(old.logFile, 'utf8'));
      await sleep(3000);
      cluster.servers[v] = await old.restart();
      restarts++;
      if (values['restart-all']) churn.fill(true);
      await sleep(3000);
    }
  })();
  await fault;
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline && next.some((n) => n < N)) await sleep(200);
  stop = true;
  clearInterval(churnTimer);
  // Each replica's view of the stream: a work queue whose replicas agree has the same state on every leader.
  const replicas: Record<string, unknown> = {};
  if (values['check-replicas']) {
    for (let k = 0; k < 8 && Object.keys(replicas).length < 3; k++) {
      try {
        const info = await jsm.streams.info(stream, { subjects_filter: '>' });
        const leader = info.cluster?.leader ?? '?';
        replicas[leader] ??= { first: info.state.first_seq, last: info.state.last_seq, messages: info.state.messages, deleted: info.state.num_deleted, subjects: info.state.subjects };
        await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, undefined, { timeout: 5000 });
      } catch {
        /* no leader yet */
      }
      await sleep(2500);
    }
  }
  const lost: [number, number][] = [];
  for (let s = 0; s < S; s++) if (next[s] < acked[s]) lost.push([s, next[s]]);
  const version = nc.info?.version;
  console.log(JSON.stringify({ run, acked: acked.reduce((a, b) => a + b, 0), delivered: next.reduce((a, b) => a + b, 0), stuckAt: lost, outOfOrder: redeliveredOutOfOrder, checkpointReverted: reverted, consumerRestarts: churned, misdelivered, resent, advisories, ...(values['check-replicas'] ? { replicas } : {}), serverVersion: version }));
  await Promise.race([Promise.all(work), sleep(3000)]);
  await nc.close().catch(() => {});
  await Promise.all(cluster.servers.map((x) => x.stop()));
  // What the servers said about the stream: a replica resetting its state (after an ack or delete beyond its last seq).
  for (const x of cluster.servers) serverLogs.push(readFileSync(x.logFile, 'utf8'));
  const count = (re: RegExp) => serverLogs.reduce((n, t) => n + (t.match(re)?.length ?? 0), 0);
  console.log(JSON.stringify({ run, serverLog: { resets: count(/Resetting stream cluster state for '[^']*> REPRO'/g), storeEOF: count(/Error applying entries to '[^']*> REPRO': stream store EOF/g), seqMismatch: count(/> REPRO'[^\n]*(mismatch|Mismatch)/g) } }));
  rmSync(dir, { recursive: true, force: true });
  return lost.length;
}

/** `--minimal`: the deterministic check described at the top. */
async function minimal(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'dcnr-wq-min-'));
  const cluster = await startNatsCluster({ storeDir: dir, nodes: 3 });
  const nc = await connect({ servers: cluster.urls, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc, { timeout: 5000 });
    const stream = 'REPRO';
    await jsm.streams.add({ name: stream, subjects: ['repro.>'], retention: values.retention === 'limits' ? RetentionPolicy.Limits : RetentionPolicy.Workqueue, storage: StorageType.File, num_replicas: 3, duplicate_window: 120_000 * NANOS });
    const publish = async (id: string) => {
      const h = headers();
      h.set('Nats-Msg-Id', id);
      for (;;) {
        try {
          return await js.publish('repro.0', new TextEncoder().encode(id), { headers: h });
        } catch {
          await sleep(200);
        }
      }
    };
    for (let i = 0; i < 10; i++) await publish(`m${i}`);
    await jsm.consumers.add(stream, { durable_name: 'c0', filter_subject: 'repro.0', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All });
    const c = await js.consumers.get(stream, 'c0');
    const batch = await c.fetch({ max_messages: 10, expires: 5000 });
    for await (const m of batch) await m.ackAck();
    await jsm.consumers.delete(stream, 'c0');
    const before = (await jsm.streams.info(stream)).state;
    const leader = (await jsm.streams.info(stream)).cluster?.leader;
    const f = cluster.servers.findIndex((_x, j) => `nats-${j + 1}` !== leader);
    const old = cluster.servers[f];
    await old.kill();
    await sleep(2000);
    cluster.servers[f] = await old.restart();
    for (let t = 0; t < 60; t++) {
      const info = await jsm.streams.info(stream).catch(() => undefined);
      if (info?.cluster?.replicas?.length === 2 && info.cluster.replicas.every((r) => r.current)) break;
      await sleep(500);
    }
    const dup: boolean[] = [];
    for (let i = 0; i < 10; i++) dup.push((await publish(`m${i}`)).duplicate);
    const fresh = await publish('m10');
    const replicas: Record<string, { first: number; last: number; messages: number }> = {};
    for (let k = 0; k < 20 && Object.keys(replicas).length < 3; k++) {
      try {
        const info = await jsm.streams.info(stream);
        const l = info.cluster?.leader ?? '?';
        replicas[l] ??= { first: info.state.first_seq, last: info.state.last_seq, messages: info.state.messages };
        await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, undefined, { timeout: 5000 });
      } catch {
        /* no leader yet */
      }
      await sleep(2500);
    }
    const states = new Set(Object.values(replicas).map((r) => JSON.stringify(r)));
    // The consequence: a consumer filtered on repro.1 is handed one message (seq from the leader's
    // store), its leader moves to the restarted follower, and the redelivery after ack_wait is
    // loaded there by sequence alone (consumer.go getNextMsg: LoadMsg(seq), no filter check).
    const effect: { pubSeq?: number; firstDelivery?: string; consumerLeaders: string[]; redelivered: { subject: string; seq: number; data: string }[] } = { consumerLeaders: [], redelivered: [] };
    try {
      await jsm.consumers.add(stream, { durable_name: 'c1', filter_subject: 'repro.1', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ack_wait: 2000 * NANOS, num_replicas: 0 });
      const want = `nats-${f + 1}`;
      // First a consumer leader other than the restarted follower (it picks the seq from its own store).
      for (let k = 0; k < 12; k++) {
        const l = (await jsm.consumers.info(stream, 'c1')).cluster?.leader ?? '?';
        effect.consumerLeaders.push(l);
        if (l !== want && l !== '?') break;
        await nc.request(`$JS.API.CONSUMER.LEADER.STEPDOWN.${stream}.c1`, undefined, { timeout: 5000 }).catch(() => undefined);
        await sleep(2000);
      }
      const h = headers();
      h.set('Nats-Msg-Id', 'x0');
      effect.pubSeq = (await js.publish('repro.1', new TextEncoder().encode('x0'), { headers: h })).seq;
      const c1 = await js.consumers.get(stream, 'c1');
      const first = await c1.next({ expires: 5000 });
      effect.firstDelivery = first ? `${first.subject} seq ${first.seq} ${new TextDecoder().decode(first.data)}` : 'none';
      for (let k = 0; k < 12; k++) {
        const l = (await jsm.consumers.info(stream, 'c1')).cluster?.leader ?? '?';
        effect.consumerLeaders.push(l);
        if (l === want) break;
        await nc.request(`$JS.API.CONSUMER.LEADER.STEPDOWN.${stream}.c1`, undefined, { timeout: 5000 }).catch(() => undefined);
        await sleep(2000);
      }
      await sleep(2500); // past ack_wait: the unacked message is redelivered by the new leader
      for (let k = 0; k < 2; k++) {
        const m = await c1.next({ expires: 4000 });
        if (!m) break;
        effect.redelivered.push({ subject: m.subject, seq: m.seq, data: new TextDecoder().decode(m.data) });
      }
    } catch (err) {
      effect.redelivered.push({ subject: `error: ${(err as Error).message}`, seq: 0, data: '' });
    }
    console.log(JSON.stringify({ minimal: true, retention: values.retention, afterAcks: { first: before.first_seq, last: before.last_seq, messages: before.messages }, restartedFollower: `nats-${f + 1}`, resendAnsweredDuplicate: dup, newMessageSeq: fresh.seq, replicas, diverged: states.size > 1, effect, misdelivered: effect.redelivered.some((r) => r.subject !== 'repro.1'), serverVersion: nc.info?.version }));
    return states.size > 1 ? 1 : 0;
  } finally {
    await nc.close().catch(() => {});
    await Promise.all(cluster.servers.map((x) => x.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}

let failed = 0;
if (values.minimal) {
  for (let r = 1; r <= Number(values.runs); r++) failed += await minimal();
  console.log(`${failed} of ${values.runs} minimal runs left the replicas diverged`);
  process.exit(0);
}
for (let r = 1; r <= Number(values.runs); r++) failed += (await once(r)) > 0 ? 1 : 0;
console.log(`${failed} of ${values.runs} runs lost an acknowledged message`);
process.exit(0);
