/**
 * hop: the latency a tensor sees crossing one VNode, against a raw NATS message of
 * the same size. One-way times on one clock (both ends observed in this process).
 *
 * - NATS one-way: core publish on one connection → delivery on another.
 * - VNode hop: a `fwd` tensor stored in a VNode's durable mailbox (JetStream) →
 *   that VNode's output appearing on the next VNode's mailbox: consumer delivery,
 *   validation, de-duplication, compute and the JetStream publish of its output (its
 *   checkpoint commits in the background, every `checkpointEvery` messages). Measured
 *   with local delivery off (`DCNR_LOCAL_DELIVERY=off`), as between VNodes of
 *   different processes.
 * - Co-located hop: the same, with the VNodes in one process as `dcnr train --pnodes
 *   0` runs them: messages between them go in memory only (local edges,
 *   runtime/local-delivery.ts), so it is timed from the ReLU's predecessor having sent
 *   its output to the ReLU having sent its own (the actors' `applied` events).
 * - JetStream one-way: a bare publish to a file work-queue stream → delivery to a
 *   streamed consumer, same bytes: the floor under a durable hop.
 *   The hop is measured at a ReLU VNode of a 4-VNode model, steps sent one at a time.
 *   1 KiB = batch 1 × 256 features; 64 KiB = batch 64 × 256.
 */
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { join } from 'node:path';
import '../actors/index.js';
import { createKernels } from '../runtime/kernels/index.js';
import { resolveModel } from '../runtime/model.js';
import { startNatsServer } from '../cluster/nats-server.js';
import { LOCAL_DELIVERY_ENV } from '../runtime/local-delivery.js';
import { Header, Subject } from '../runtime/protocol.js';
import type { HostEvent } from '../runtime/actor-host.js';
import { train } from '../trainer/train.js';
import { sig, summarize } from './stats.js';
import type { Benchmark } from './types.js';

export interface HopSize {
  bytes: number;
  natsOneWayUs: { p50: number; p99: number };
  /** A bare JetStream publish (file stream) → delivery to a streamed consumer, same bytes: the floor a durable hop stands on. */
  jetstreamOneWayUs: { p50: number; p99: number };
  vnodeHopUs: { p50: number; p99: number };
  /** The same hop between VNodes of one process (handed over in memory). */
  localHopUs: { p50: number; p99: number };
  n: number;
}

export interface HopBench {
  /** p50 at 1 KiB (the contract's headline numbers). */
  natsOneWayUs: number;
  jetstreamOneWayUs: number;
  vnodeHopUs: number;
  sizes: HopSize[];
}

const FEATURES = 256;

async function natsOneWay(url: string, bytes: number, n: number): Promise<number[]> {
  const pub = await connect({ servers: url });
  const sub = await connect({ servers: url });
  const payload = new Uint8Array(bytes);
  const samples: number[] = [];
  let sentAt = 0;
  let got: (() => void) | undefined;
  sub.subscribe('bench.hop', {
    callback: () => {
      samples.push((performance.now() - sentAt) * 1000);
      got?.();
    },
  });
  await sub.flush();
  for (let i = 0; i < n + 20; i++) {
    const arrived = new Promise<void>((r) => (got = r));
    sentAt = performance.now();
    pub.publish('bench.hop', payload);
    await arrived;
  }
  await pub.close();
  await sub.close();
  return samples.slice(20); // warm-up
}

async function jetstreamOneWay(url: string, bytes: number, n: number): Promise<number[]> {
  const pub = await connect({ servers: url, noAsyncTraces: true });
  const sub = await connect({ servers: url, noAsyncTraces: true });
  const jsm = await jetstreamManager(pub);
  const stream = `BENCH_JS_${bytes}`;
  await jsm.streams.add({ name: stream, subjects: [`bench.js.${bytes}`], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
  await jsm.consumers.add(stream, { durable_name: 'c', ack_policy: AckPolicy.Explicit });
  const messages = await jetstream(sub).consumers.get(stream, 'c').then((c) => c.consume({ max_messages: 64 }));
  const payload = new Uint8Array(bytes);
  const samples: number[] = [];
  let sentAt = 0;
  let got: (() => void) | undefined;
  void (async () => {
    for await (const m of messages) {
      samples.push((performance.now() - sentAt) * 1000);
      m.ack();
      got?.();
    }
  })();
  const js = jetstream(pub);
  for (let i = 0; i < n + 20; i++) {
    const arrived = new Promise<void>((r) => (got = r));
    sentAt = performance.now();
    void js.publish(`bench.js.${bytes}`, payload);
    await arrived;
  }
  await messages.close();
  await jsm.streams.delete(stream);
  await pub.close();
  await sub.close();
  return samples.slice(20); // warm-up
}

/** Run `fn` with every message going through JetStream only (no in-memory hand-over). */
async function withoutLocalDelivery<T>(fn: () => Promise<T>): Promise<T> {
  const before = process.env[LOCAL_DELIVERY_ENV];
  process.env[LOCAL_DELIVERY_ENV] = 'off';
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env[LOCAL_DELIVERY_ENV];
    else process.env[LOCAL_DELIVERY_ENV] = before;
  }
}

async function vnodeHop(nc: NatsConnection, batch: number, steps: number, suffix = ''): Promise<number[]> {
  const name = `bench-hop-${batch}${suffix}`;
  const model = resolveModel({
    name,
    pipelineDepth: 0,
    vnodes: [
      { type: 'layer.dense', config: { units: FEATURES } },
      { type: 'activation.relu', config: {} },
      { type: 'layer.dense', config: { units: 10, init: 'xavier' } },
      { type: 'loss.softmaxCrossEntropy', config: {} },
    ],
  });
  const arrived = new Map<number, number>();
  const samples: number[] = [];
  const seqOf = (h: ReturnType<typeof natsHeaders> | undefined) => Number(h?.get(Header.Seq));
  const into = nc.subscribe(Subject.mailbox(name, 1, 'fwd'), { callback: (_e, m) => void arrived.set(seqOf(m.headers), performance.now()) });
  const out = nc.subscribe(Subject.mailbox(name, 2, 'fwd'), {
    callback: (_e, m) => {
      const t0 = arrived.get(seqOf(m.headers));
      if (t0 !== undefined) samples.push((performance.now() - t0) * 1000);
    },
  });
  await nc.flush();
  // Co-located: nothing between the VNodes is published; each `applied` event comes once its outputs are sent.
  const sent = new Map<number, number>();
  const onEvent = (e: HostEvent) => {
    if (e.type !== 'applied' || e.kind !== 'fwd') return;
    if (e.vnode.startsWith(`${name}.0.`)) sent.set(e.seq, performance.now());
    else if (e.vnode.startsWith(`${name}.1.`) && sent.has(e.seq)) samples.push((performance.now() - sent.get(e.seq)!) * 1000);
  };
  await train({ nc, model, steps, batch, seed: 1, kernels: await createKernels(), hostLocally: true, window: 1, ...(suffix === '-local' ? { onEvent } : {}) });
  into.unsubscribe();
  out.unsubscribe();
  return samples.slice(10);
}

export const hopBenchmark: Benchmark<HopBench> = {
  name: 'hop',
  description: 'one VNode hop (durable mailbox, persisted state) vs a raw NATS message, p50/p99',
  async run(ctx) {
    const server = await startNatsServer({ storeDir: join(ctx.workDir, 'hop') });
    const nc = await connect({ servers: server.url, noAsyncTraces: true });
    const n = ctx.quick ? 150 : 500;
    const sizes: HopSize[] = [];
    try {
      for (const batch of [1, 64]) {
        const bytes = batch * FEATURES * 4;
        const raw = summarize(await natsOneWay(server.url, bytes, n));
        const js = summarize(await jetstreamOneWay(server.url, bytes, n));
        const hop = summarize(await withoutLocalDelivery(() => vnodeHop(nc, batch, n + 10)));
        const local = summarize(await vnodeHop(nc, batch, n + 10, '-local'));
        sizes.push({
          bytes,
          n: hop.n,
          natsOneWayUs: { p50: sig(raw.p50), p99: sig(raw.p99) },
          jetstreamOneWayUs: { p50: sig(js.p50), p99: sig(js.p99) },
          vnodeHopUs: { p50: sig(hop.p50), p99: sig(hop.p99) },
          localHopUs: { p50: sig(local.p50), p99: sig(local.p99) },
        });
        ctx.progress(`hop: ${bytes / 1024} KiB: NATS one-way p50 ${sig(raw.p50)} µs, JetStream ${sig(js.p50)} µs, VNode hop p50 ${sig(hop.p50)} µs, co-located ${sig(local.p50)} µs`);
      }
    } finally {
      await nc.close();
      await server.stop();
    }
    return { natsOneWayUs: sizes[0].natsOneWayUs.p50, jetstreamOneWayUs: sizes[0].jetstreamOneWayUs.p50, vnodeHopUs: sizes[0].vnodeHopUs.p50, sizes };
  },
};
