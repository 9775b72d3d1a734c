/**
 * A PNode: a worker process that hosts the VNodes the supervisor assigns to it. One
 * file per concern beside this one, wired here:
 *   capacity.ts       what it can do (cores, memory, kernels, GFLOP/s, VNode types)
 *   health.ts         how it is doing (event loop, GC, memory, kernel drift; re-measured GFLOP/s)
 *   ownership.ts      the ownership bucket → which VNodes it hosts, under which epoch
 *   inference.ts      forward-only requests for the VNodes it owns, from served versions
 *   host-events.ts    what its actors do → cluster events, logs, counters
 *   fault-control.ts  injected slowness (scenario runs only)
 *   heartbeat.ts      its heartbeats, from a thread of their own (liveness apart from progress)
 *
 * It speaks to the supervisor only through the protocol: it registers in the members
 * bucket, heartbeats on `dcnr.hb.<id>` and publishes what happens on `dcnr.events.<id>`.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { ActorHost } from '../actor-host.js';
import { openBuckets } from '../cluster-state.js';
import type { Kernels } from '../kernels/types.js';
import { silentLog, type ComponentLog } from '../log.js';
import { NAME_PATTERN, Subject, type ClusterEvent, type Heartbeat, type PNodeCapacity } from '../protocol.js';
import { signerOf } from '../security/signing.js';
import { stateAuthOf } from '../security/verifier.js';
import { rejectOnce } from '../records.js';
import { chunkBytesFor, StateStore } from '../state-store.js';
import { telemetryEnabled, telemetryMetrics } from '../telemetry.js';
import { measureCapacity } from './capacity.js';
import { serveFaultControl } from './fault-control.js';
import { startHealthSampler } from './health.js';
import { reportHostEvents } from './host-events.js';
import { startHeartbeats, type HeartbeatLink } from './heartbeat.js';
import { serveInference } from './inference.js';
import { serveAudits } from './audit.js';
import { followOwnership } from './ownership.js';

export { measureGflops } from './capacity.js';

export interface PNodeOptions {
  nc: NatsConnection;
  /** Stable id: subject token and KV key. @default `pnode-<pid>` */
  name?: string;
  kernels: Kernels;
  /** Heartbeat period. @default 250 */
  heartbeatMs?: number;
  /** Send heartbeats from a thread with its own connection to these servers (heartbeat.ts). @default the main thread, on `nc` */
  heartbeatLink?: HeartbeatLink;
  /** A main loop held up this long is taken for hung: heartbeats stop. @default 10000 */
  hangMs?: number;
  /** VNodes hosted at most; an assignment past it is refused. @default 256 */
  maxVNodes?: number;
  /** Passivate a VNode after this long without a message. @default 300000 */
  passivateAfterMs?: number;
  /** @default silent */
  log?: ComponentLog;
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

/** Start a PNode on an open connection. */
export async function startPNode(o: PNodeOptions): Promise<PNode> {
  const id = o.name ?? `pnode-${process.pid}`;
  if (!NAME_PATTERN.test(id)) throw new Error(`PNode name ${JSON.stringify(id)} must be 1-64 of A-Z a-z 0-9 _ -`);
  const { nc } = o;
  const log = o.log ?? silentLog;
  const buckets = await openBuckets(nc);
  const reject = rejectOnce((line) => log.line(line, 'warn'));
  const store = new StateStore(buckets.state, { chunkBytes: chunkBytesFor(nc), reject, auth: await stateAuthOf(nc) });
  const faults = (o.faultInjection ?? process.env.DCNR_FAULT_INJECTION === '1') ? serveFaultControl(nc, id, log.line) : undefined;
  // Injected slowness is real: every kernel call of this PNode goes through it.
  const kernels = faults ? faults.slowed(o.kernels) : o.kernels;
  const capacity = await measureCapacity(kernels, o.maxVNodes ?? 256);
  const health = startHealthSampler(kernels);
  const counters: Heartbeat['counters'] = { fencedWrites: 0, rejected: 0, restarts: 0, escalations: 0, activations: 0 };
  const emit = (e: ClusterEvent) => {
    nc.publish(Subject.events(id), JSON.stringify(e));
    log.event(e);
  };

  const host = new ActorHost({
    nc,
    js: jetstream(nc),
    jsm: await jetstreamManager(nc),
    store,
    kernels,
    messageDelayMs: faults?.delayMs,
    corruptGradients: faults?.corruption,
    pnode: id,
    passivateAfterMs: o.passivateAfterMs ?? 300_000,
    onEvent: reportHostEvents(id, counters, emit, log.line),
  });
  const inference = serveInference({ nc, store, kernels, log: (line) => log.line(line, 'warn') });
  const audits = serveAudits({ nc, pnode: id, deployments: buckets.deployments, kernels, log: (line) => log.line(line, 'warn') });
  const ownership = await followOwnership({
    nc,
    id,
    owners: buckets.owners,
    deployments: buckets.deployments,
    host,
    maxVNodes: capacity.maxVNodes,
    emit,
    log: log.line,
    reject,
    inference,
  });

  // Auth on: the key we sign with, announced on the heartbeat subject only our credentials may use.
  const publicKey = signerOf(nc)?.publicKey;
  await buckets.members.put(id, JSON.stringify({ id, pid: process.pid, capacity, startedAt: new Date().toISOString() }));
  const heartbeats = await startHeartbeats({
    nc,
    id,
    periodMs: o.heartbeatMs ?? 250,
    hangMs: o.hangMs,
    link: o.heartbeatLink,
    log: log.line,
    heartbeat: () => ({
      pnode: id,
      pid: process.pid,
      at: Date.now(),
      capacity: { ...capacity, gflops: health.gflops(capacity.gflops) },
      vnodes: ownership.hosted(),
      counters,
      health: health.health(),
      ...(publicKey ? { publicKey } : {}),
    }),
  });
  // Mailbox depth costs a JetStream request per port: measured only when telemetry is on.
  let depth = 0;
  const depthTimer = telemetryEnabled() ? setInterval(() => void host.pendingMessages().then((n) => (depth = n), () => {}), 5000) : undefined;
  if (depthTimer) telemetryMetrics().mailboxDepth.addCallback((r) => r.observe(depth, { 'dcnr.pnode': id }));
  log.line(`PNode ${id} (pid ${process.pid}) up: ${capacity.kernelMode}, ${capacity.gflops} GFLOP/s, ${capacity.cores} cores, types ${capacity.types.join(' ')}`);

  return {
    id,
    capacity,
    async stop() {
      await heartbeats.stop();
      clearInterval(depthTimer);
      faults?.stop();
      health.stop();
      await ownership.stop();
      inference.stop();
      audits.stop();
      await host.stopAll();
    },
  };
}
