/**
 * A PNode: a worker process that hosts the VNodes the supervisor assigns to it.
 *
 * It speaks to the supervisor only through the protocol: it registers in the members
 * bucket, heartbeats on `dcnr.hb.<id>`, watches the ownership bucket for records that
 * name it, and publishes what happens on `dcnr.events.<id>`. It hosts a VNode while an
 * ownership record names it, and stops the moment a record names someone else (or its
 * own writes are fenced, whichever comes first).
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { availableParallelism, totalmem } from 'node:os';
import { ActorHost, type HostedDeployment, type HostEvent } from './actor-host.js';
import { openBuckets, readDeployment, type Buckets, type OwnershipRecord } from './cluster-state.js';
import type { Kernels } from './kernels/types.js';
import { resolveModel } from './model.js';
import { NAME_PATTERN, Subject, type ClusterEvent, type FaultControlReply, type FaultControlRequest, type Heartbeat, type PNodeCapacity } from './protocol.js';
import { StateStore } from './state-store.js';
import { telemetryEnabled, telemetryMetrics } from './telemetry.js';
import { chunkBytesFor } from './trainer.js';

export interface PNodeOptions {
  nc: NatsConnection;
  /** Stable id: subject token and KV key. @default `pnode-<pid>` */
  name?: string;
  kernels: Kernels;
  /** Heartbeat period. @default 250 */
  heartbeatMs?: number;
  /** VNodes accepted at most. @default 256 */
  maxVNodes?: number;
  /** Passivate a VNode after this long without a message. @default 300000 */
  passivateAfterMs?: number;
  /** Log one line per event. */
  log?: (line: string) => void;
  /**
   * Answer fault-injection requests (`Subject.faultControl`): scenario runs only.
   * @default env DCNR_FAULT_INJECTION === '1'
   */
  faultInjection?: boolean;
}

export interface PNode {
  id: string;
  capacity: PNodeCapacity;
  /** Stop hosting, stop heartbeats (does not close the connection). */
  stop(): Promise<void>;
}

/** Measure this PNode's matmul speed briefly (256², a few runs): capacity for placement. */
export async function measureGflops(k: Kernels): Promise<number> {
  const n = 256;
  const a = new Float32Array(n * n).fill(0.5);
  const b = new Float32Array(n * n).fill(0.25);
  await k.matmul(a, b, n, n, n); // compile / warm up
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await k.matmul(a, b, n, n, n);
    best = Math.min(best, performance.now() - t);
  }
  return Math.round(((2 * n * n * n) / (best / 1000) / 1e9) * 10) / 10;
}

/** Start a PNode on an open connection. */
export async function startPNode(o: PNodeOptions): Promise<PNode> {
  const id = o.name ?? `pnode-${process.pid}`;
  if (!NAME_PATTERN.test(id)) throw new Error(`PNode name ${JSON.stringify(id)} must be 1-64 of A-Z a-z 0-9 _ -`);
  const { nc, kernels } = o;
  const log = o.log ?? (() => {});
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const buckets: Buckets = await openBuckets(nc);
  const store = new StateStore(buckets.state, { chunkBytes: chunkBytesFor(nc) });
  const capacity: PNodeCapacity = {
    cores: availableParallelism(),
    memoryMb: Math.round(totalmem() / 2 ** 20),
    kernelMode: kernels.mode,
    gflops: await measureGflops(kernels),
    maxVNodes: o.maxVNodes ?? 256,
  };
  const counters: Heartbeat['counters'] = { fencedWrites: 0, rejected: 0, restarts: 0, escalations: 0, activations: 0 };
  const emit = (e: ClusterEvent) => {
    nc.publish(Subject.events(id), JSON.stringify(e));
    log(JSON.stringify(e));
  };
  const keyOf = (vnodeId: string) => vnodeId.split('.').slice(0, 2).join('.');

  // Fault injection (scenarios): a delay before every message. Off unless asked for, and
  // then only through a subject a launcher knows: strangers must not slow PNodes down.
  let messageDelayMs = 0;
  if (o.faultInjection ?? process.env.DCNR_FAULT_INJECTION === '1') {
    nc.subscribe(Subject.faultControl(id), {
      callback: (_err, m) => {
        let reply: FaultControlReply;
        try {
          const req = m.json<FaultControlRequest>();
          const d = req?.messageDelayMs;
          if (typeof d !== 'number' || !Number.isFinite(d) || d < 0 || d > 60_000) throw new Error(`messageDelayMs must be a number in [0, 60000], got ${JSON.stringify(d)}`);
          messageDelayMs = d;
          log(`fault injection: ${d} ms before every message`);
          reply = { ok: true, pnode: id, messageDelayMs };
        } catch (err) {
          reply = { ok: false, pnode: id, messageDelayMs, error: (err as Error).message };
        }
        m.respond(JSON.stringify(reply));
      },
    });
  }

  const host = new ActorHost({
    nc,
    js,
    jsm,
    store,
    kernels,
    messageDelayMs: () => messageDelayMs,
    pnode: id,
    passivateAfterMs: o.passivateAfterMs ?? 300_000,
    onEvent: (e: HostEvent) => {
      const at = Date.now();
      switch (e.type) {
        case 'activated':
          counters.activations++;
          emit({ type: 'activated', vnode: keyOf(e.vnode), pnode: id, epoch: e.epoch, at, ms: e.ms });
          break;
        case 'fenced':
          if (e.cause === 'write') counters.fencedWrites++;
          emit({ type: 'fenced', vnode: keyOf(e.vnode), pnode: id, epoch: e.epoch, at, cause: e.cause });
          break;
        case 'rejected':
          counters.rejected++;
          emit({ type: 'rejected', vnode: keyOf(e.vnode), pnode: id, error: e.error, at });
          break;
        case 'restarting':
          counters.restarts++;
          log(`${e.vnode} failed (attempt ${e.attempt}), restarting in ${e.delayMs} ms: ${e.error.split('\n')[0]}`);
          break;
        case 'passivated':
          log(`${e.vnode} passivated (idle); reactivates on its next message`);
          emit({ type: 'passivated', vnode: keyOf(e.vnode), pnode: id, at });
          break;
        case 'escalated':
          counters.escalations++;
          emit({ type: 'escalated', vnode: e.vnode, pnode: id, error: e.error.split('\n')[0], at });
          break;
      }
    },
  });

  // Hosted VNodes and the epoch each runs under.
  const epochs = new Map<string, number>();
  const models = new Map<string, HostedDeployment>();

  async function deploymentOf(deployment: string): Promise<HostedDeployment | undefined> {
    const record = await readDeployment(buckets.deployments, deployment);
    if (!record) return undefined;
    const cached = models.get(deployment);
    if (cached && cached.generation === record.generation) return cached;
    const fresh = { model: resolveModel(record.spec), seed: record.seed, generation: record.generation };
    models.set(deployment, fresh);
    return fresh;
  }

  async function onOwner(key: string, record: OwnershipRecord | null) {
    const [deployment, indexText] = key.split('.');
    const index = Number(indexText);
    const hostedEpoch = epochs.get(key);
    if (!record || record.pnode !== id) {
      if (hostedEpoch !== undefined) {
        epochs.delete(key);
        await host.release(deployment, index);
        emit({ type: 'released', vnode: key, pnode: id, at: Date.now(), reason: record ? `now owned by ${record.pnode}` : 'unassigned' });
      }
      return;
    }
    if (hostedEpoch === record.epoch) return;
    if (hostedEpoch !== undefined) await host.release(deployment, index);
    const m = await deploymentOf(deployment);
    if (!m) {
      log(`assigned ${key}, but deployment ${deployment} has no record; ignoring`);
      return;
    }
    epochs.set(key, record.epoch);
    void host.host(m, index, record.epoch).then((exit) => {
      if (epochs.get(key) === record.epoch && exit !== 'done') epochs.delete(key);
      if (exit === 'done') log(`${key} finished its schedule`);
    });
  }

  // Ownership records that name us, as they change. Handled one at a time, in order.
  const watcher = await buckets.owners.watch();
  let chain = Promise.resolve();
  void (async () => {
    for await (const e of watcher) {
      const record = e.operation === 'PUT' && e.length > 0 ? e.json<OwnershipRecord>() : null;
      chain = chain.then(() => onOwner(e.key, record)).catch((err) => log(`ownership update ${e.key} failed: ${err}`));
    }
  })();

  await buckets.members.put(id, JSON.stringify({ id, pid: process.pid, capacity, startedAt: new Date().toISOString() }));
  const beat = () => {
    const hb: Heartbeat = { pnode: id, pid: process.pid, at: Date.now(), capacity, vnodes: [...epochs.keys()].sort(), counters };
    nc.publish(Subject.heartbeat(id), JSON.stringify(hb));
  };
  beat();
  const timer = setInterval(beat, o.heartbeatMs ?? 250);
  // Mailbox depth costs a JetStream request per port: measured only when telemetry is on.
  let depth = 0;
  const depthTimer = telemetryEnabled()
    ? setInterval(() => void host.pendingMessages().then((n) => (depth = n), () => {}), 5000)
    : undefined;
  if (depthTimer) telemetryMetrics().mailboxDepth.addCallback((r) => r.observe(depth, { 'dcnr.pnode': id }));
  log(`PNode ${id} (pid ${process.pid}) up: ${capacity.kernelMode}, ${capacity.gflops} GFLOP/s, ${capacity.cores} cores`);

  return {
    id,
    capacity,
    async stop() {
      clearInterval(timer);
      clearInterval(depthTimer);
      watcher.stop();
      await chain;
      await host.stopAll();
    },
  };
}
