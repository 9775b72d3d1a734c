/**
 * The actor host end to end on a real nats-server: bad input is rejected, counted and
 * dead-lettered without disturbing training (invariant 5), and a VNode type defined
 * right here, outside runtime/, trains without any runtime change.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import { z } from 'zod';
import '../actors/index.js';
import { cleanup, setup } from '../test/helpers/nats.js';
import { waitFor } from '../test/helpers/wait.js';
import { createKernels } from './kernels/index.js';
import { BUILTIN_MODELS, resolveModel } from './model.js';
import { Header, PROTOCOL_VERSION, Stream, Subject } from './protocol.js';
import { registerVNodeType } from './registry.js';
import { toBytes } from './tensor.js';
import { ActorHost, type HostEvent } from './actor-host.js';
import { openBuckets } from './cluster-state.js';
import { sendMessage } from './envelope.js';
import { ensureDeploymentStreams } from './mailbox.js';
import type { ResolvedModel } from './model.js';
import { StateStore } from './state-store.js';
import { train } from '../trainer/train.js';
import { VNodeActor, type ActorEvent } from './vnode-actor.js';
import { readProgress } from './vnode-record.js';
import { defineVNodeType, type TransformDefinition, type Tensors } from './vnode-type.js';

const kernels = await createKernels();
const progressOf = (meta: Parameters<typeof readProgress>[0]) => {
  const p = readProgress(meta);
  if (!p.ok) throw new Error(p.error);
  return p.value;
};
const STEPS = 30;
const BATCH = 16;

test('malformed messages are rejected, counted and dead-lettered; training is unaffected', async () => {
  // Above Limits.maxTensorBytes (8 MiB), so an oversize tensor reaches the validator.
  const { ns, nc } = await setup({ maxPayload: 12 * 1024 * 1024 });
  try {
    const model = resolveModel({ ...BUILTIN_MODELS['mnist-mlp'], name: 'clean' });
    const clean = await train({ nc, model, steps: STEPS, batch: BATCH, seed: 3, kernels, hostLocally: true });

    const attacked = resolveModel({ ...BUILTIN_MODELS['mnist-mlp'], name: 'attacked' });
    const js = jetstream(nc);
    const h = (over: Record<string, string>) => {
      const x = headers();
      const base: Record<string, string> = {
        [Header.Version]: String(PROTOCOL_VERSION), [Header.Kind]: 'fwd', [Header.Deployment]: 'attacked',
        [Header.VNode]: '0', [Header.Seq]: '3', [Header.Shape]: `${BATCH},784`, [Header.DType]: 'f32',
      };
      for (const [k, v] of Object.entries({ ...base, ...over })) if (v !== '') x.set(k, v);
      return x;
    };
    const good = new Float32Array(BATCH * 784);
    const nan = good.slice();
    nan[17] = NaN;
    const inf = good.slice();
    inf[0] = Infinity;
    const cases: Array<{ name: string; subject: string; payload: Uint8Array; headers?: ReturnType<typeof headers>; error: RegExp }> = [
      { name: 'wrong version', subject: Subject.mailbox('attacked', 0, 'fwd'), payload: toBytes(good), headers: h({ [Header.Version]: '7' }), error: /protocol version/ },
      { name: 'unknown kind', subject: Subject.mailbox('attacked', 0, 'fwd'), payload: toBytes(good), headers: h({ [Header.Kind]: 'gossip' }), error: /unknown message kind/ },
      { name: 'length mismatch', subject: Subject.mailbox('attacked', 0, 'fwd'), payload: toBytes(good.subarray(1)), headers: h({}), error: /payload is .* bytes but shape/ },
      { name: 'shape mismatch', subject: Subject.mailbox('attacked', 2, 'bwd'), payload: toBytes(new Float32Array(BATCH * 5)), headers: h({ [Header.Kind]: 'bwd', [Header.VNode]: '2', [Header.Shape]: `${BATCH},5` }), error: /must be \[rows, 64\]/ },
      { name: 'NaN', subject: Subject.mailbox('attacked', 0, 'fwd'), payload: toBytes(nan), headers: h({}), error: /non-finite value \(NaN\)/ },
      { name: 'Infinity', subject: Subject.mailbox('attacked', 5, 'target'), payload: toBytes(inf.subarray(0, BATCH * 10)), headers: h({ [Header.Kind]: 'target', [Header.VNode]: '5', [Header.Shape]: `${BATCH},10` }), error: /non-finite value \(Infinity\)/ },
      { name: 'oversize', subject: Subject.mailbox('attacked', 0, 'fwd'), payload: new Uint8Array(9 * 1024 * 1024), headers: h({ [Header.Shape]: `${(9 * 1024 * 1024) / 4 / 784 | 0},784` }), error: /over the 8388608-byte limit/ },
      { name: 'garbage', subject: Subject.mailbox('attacked', 0, 'fwd'), payload: new Uint8Array([0xde, 0xad, 0xbe, 0xef, 1, 2, 3]), error: /not a DCNR message/ },
      { name: 'out of order', subject: Subject.mailbox('attacked', 0, 'fwd'), payload: toBytes(good), headers: h({ [Header.Seq]: '1000' }), error: /out of order/ },
    ];
    const rejected: string[] = [];
    let injected = false;
    const result = await train({
      nc, model: attacked, steps: STEPS, batch: BATCH, seed: 3, kernels, hostLocally: true,
      onProgress: ({ done }) => {
        if (done !== 1 || injected) return;
        injected = true;
        for (const c of cases) void js.publish(c.subject, c.payload, c.headers ? { headers: c.headers } : undefined);
      },
      onEvent: (e) => {
        if (e.type === 'rejected') rejected.push(e.error);
      },
    });
    assert.ok(injected);
    assert.is(rejected.length, cases.length, `rejections: ${rejected.join(' | ')}`);
    for (const c of cases) assert.ok(rejected.some((r) => c.error.test(r)), `${c.name} rejected with ${c.error}`);
    // Nothing lost, nothing changed: same parameters as the clean run.
    assert.is(result.paramsHash, clean.paramsHash);

    const jsm = await jetstreamManager(nc);
    const dlq = await jsm.streams.info(Stream.deadLetter);
    assert.is(dlq.state.messages, cases.length, 'every bad message kept in the dead-letter stream');
    const first = await jsm.streams.getMessage(Stream.deadLetter, { seq: dlq.state.first_seq });
    assert.ok(first!.header.get(Header.Error).length > 0, 'dead-lettered with its reason');
    assert.ok(first!.header.get(Header.OriginalSubject).startsWith('dcnr.mbox.attacked.'));
  } finally {
    await cleanup(ns, nc);
  }
});

test('a VNode type defined in a test file trains without touching runtime code', async () => {
  const leakyRelu = defineVNodeType({
    type: 'activation.leakyRelu',
    version: 1,
    role: 'activation',
    description: 'max(x, slope·x)',
    config: z.object({ slope: z.number().min(0).max(1).default(0.01) }),
    async forward({ config }, _t, x) {
      const y = x.data.map((v) => (v > 0 ? v : config.slope * v));
      return { y: { shape: x.shape, data: y }, stash: [x.data] };
    },
    async backward({ config }, _t, dy, [x]) {
      return { dx: { shape: dy.shape, data: dy.data.map((g, i) => (x[i] > 0 ? g : config.slope * g)) } };
    },
  });
  registerVNodeType(leakyRelu);
  const { ns, nc } = await setup();
  try {
    const model = resolveModel({
      name: 'leaky',
      vnodes: [
        { type: 'layer.dense', config: { units: 32 } },
        { type: 'activation.leakyRelu', config: { slope: 0.05 } },
        { type: 'layer.dense', config: { units: 10, init: 'xavier' } },
        { type: 'loss.softmaxCrossEntropy' },
      ],
    });
    const result = await train({ nc, model, steps: 150, batch: 32, seed: 1, kernels, hostLocally: true });
    const early = result.losses.slice(0, 10).reduce((a, b) => a + b) / 10;
    assert.ok(result.finalLoss < early * 0.6, `loss fell from ${early} to ${result.finalLoss}`);
    assert.ok(result.testAccuracy! > 0.7, `accuracy ${result.testAccuracy}`);
  } finally {
    await cleanup(ns, nc);
  }
});

/** `model` with VNode 0's type replaced by `def(old)`: the same type id at another version. */
const withLayer0 = (model: ResolvedModel, def: (old: TransformDefinition<any>) => TransformDefinition<any>): ResolvedModel => ({
  ...model,
  vnodes: model.vnodes.map((v) => (v.index === 0 ? { ...v, def: def(v.def as TransformDefinition<any>) } : v)),
});

/** A real server, streams and store for activating VNode 0 of a small model by hand. */
async function layer0Fixture(name: string) {
  const { ns, nc } = await setup();
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const store = new StateStore((await openBuckets(nc)).state);
  const model = resolveModel({ ...BUILTIN_MODELS['mnist-mlp'], name });
  await ensureDeploymentStreams(jsm, name);
  const base = { nc, js, jsm, store, kernels, seed: 5, generation: 1, index: 0 };
  return { ns, nc, js, jsm, store, model, base };
}

test('a state stored by an older type version is upgraded on activation, and training goes on from the upgraded tensors', async () => {
  const f = await layer0Fixture('upgrade');
  let live: VNodeActor | undefined;
  try {
    // Version 1 of layer 0 creates and commits its initial state.
    const v1 = await VNodeActor.activate({ ...f.base, model: f.model, epoch: 1 });
    const W1 = v1.tensors.W.slice();
    // Version 2 stores W doubled (a stand-in for any change of layout).
    const calls: number[] = [];
    const upgrade = (from: number, t: Tensors): Tensors => {
      calls.push(from);
      return { ...t, W: t.W.map((w) => 2 * w) };
    };
    const model2 = withLayer0(f.model, (old) => ({ ...old, version: 2, upgrade }));
    const events: ActorEvent[] = [];
    const v2 = await VNodeActor.activate({ ...f.base, model: model2, epoch: 2, onEvent: (e) => void events.push(e) });
    live = v2;
    assert.equal(calls, [1], 'upgrade() called once, from version 1');
    assert.equal(Array.from(v2.tensors.W), Array.from(W1.map((w) => 2 * w)), 'the actor holds the upgraded tensors');
    const stored = await f.store.read('upgrade', 0);
    assert.is(stored!.meta.typeVersion, 2, 'the takeover write stores the new version');

    // One step through the upgraded actor, against the type's own functions on 2·W.
    const rows = 4;
    const x = Float32Array.from({ length: rows * 784 }, (_, i) => ((i * 7) % 13) / 13);
    const dy = Float32Array.from({ length: rows * 128 }, (_, i) => ((i * 5) % 11) / 11 - 0.5);
    const running = v2.run();
    await sendMessage(f.nc, { deployment: 'upgrade', to: 0, kind: 'fwd', seq: 0, epoch: 0, from: 'test', tensor: { shape: [rows, 784], data: x } });
    // `end` right behind it: with forwards over, the schedule takes bwd 0 at once.
    await sendMessage(f.nc, { deployment: 'upgrade', to: 0, kind: 'end', seq: 1, epoch: 0, from: 'test' });
    await sendMessage(f.nc, { deployment: 'upgrade', to: 0, kind: 'bwd', seq: 0, epoch: 0, from: 'test', tensor: { shape: [rows, 128], data: dy } });
    assert.is(await running, 'done', 'its schedule complete after fwd 0, end 1, bwd 0');
    live = undefined;
    assert.equal(events.filter((e) => e.type === 'applied').map((e) => `${(e as { kind: string }).kind}`), ['fwd', 'end', 'bwd']);

    const v = model2.vnodes[0];
    const def = v.def as TransformDefinition<any>;
    const ctx = { k: kernels, config: v.config, inFeatures: v.inFeatures, outFeatures: v.outFeatures };
    const start = { ...v1.tensors, W: W1.map((w) => 2 * w) };
    const { stash } = await def.forward(ctx, start, { shape: [rows, 784], data: x });
    const expected = await def.backward({ ...ctx, step: 1, needDx: false }, start, { shape: [rows, 128], data: dy }, stash ?? []);
    const committed = await f.store.load((await f.store.read('upgrade', 0))!.meta);
    assert.equal(Array.from(committed.tensors.W), Array.from(expected.tensors!.W), 'W after one step from the upgraded weights');
    assert.equal(Array.from(committed.tensors.b), Array.from(expected.tensors!.b));
  } finally {
    live?.stop();
    await cleanup(f.ns, f.nc);
  }
});

test('a state stored by a NEWER type version than the code is refused, naming both versions; the host restarts, then escalates', async () => {
  const f = await layer0Fixture('newer');
  try {
    const model3 = withLayer0(f.model, (old) => ({ ...old, version: 3 }));
    await VNodeActor.activate({ ...f.base, model: model3, epoch: 1 });
    const stored = (await f.store.read('newer', 0))!;
    assert.is(stored.meta.typeVersion, 3);

    // This code knows layer.dense version 1 only.
    const refused = await VNodeActor.activate({ ...f.base, model: f.model, epoch: 2 }).then(() => null, (err: Error) => err);
    assert.instance(refused, Error, 'activation must refuse a newer stored version');
    assert.match(refused!.message, /version 3, newer than this code's version 1/);
    const after = (await f.store.read('newer', 0))!;
    assert.is(after.revision, stored.revision, 'nothing written over the newer state');

    const events: HostEvent[] = [];
    const host = new ActorHost({ nc: f.nc, js: f.js, jsm: f.jsm, store: f.store, kernels, maxRestarts: 1, backoffMs: 1, onEvent: (e) => void events.push(e) });
    const exit = await host.host({ model: f.model, seed: 5, generation: 1 }, 0, 3);
    assert.is(exit, 'escalated');
    assert.equal(events.map((e) => e.type), ['restarting', 'escalated']);
    assert.match((events[1] as { error: string }).error, /version 3, newer than this code's version 1/);
  } finally {
    await cleanup(f.ns, f.nc);
  }
});

test('a stored machine snapshot of the wrong shape is refused with a reason, and progress readers get null, not a throw', async () => {
  const f = await layer0Fixture('junk');
  try {
    const first = await VNodeActor.activate({ ...f.base, model: f.model, epoch: 1 });
    const prev = (await f.store.read('junk', 0))!;
    await f.store.write('junk', 0, prev, { generation: 1, epoch: 1, type: 'layer.dense', typeVersion: 1, snapshot: { status: 'active', value: 'waiting', context: { applied: 'many' } }, tensors: first.tensors as Tensors, stash: new Map() });
    const junk = (await f.store.read('junk', 0))!;
    const progress = readProgress(junk.meta);
    assert.is(progress.ok, false);
    assert.match((progress as { error: string }).error, /context\.role/);
    const refused = await VNodeActor.activate({ ...f.base, model: f.model, epoch: 2 }).then(() => null, (err: Error) => err);
    assert.instance(refused, Error, 'activation must refuse a malformed snapshot');
    assert.match(refused!.message, /stored state cannot be resumed: not a VNode machine snapshot/);
  } finally {
    await cleanup(f.ns, f.nc);
  }
});

test('checkpoints: acks wait for the checkpoint that covers them; a redelivered applied message is held, not acked early; a restore replays from the checkpoint to the same state', async () => {
  const f = await layer0Fixture('held');
  // A relu alone (VNode 1 of mnist-mlp, 128 features), model depth 8 (its own: 6): forwards only, in memory until 3 are applied.
  const model: ResolvedModel = resolveModel({ ...f.model.spec, pipelineDepth: 8, checkpointEvery: 3, checkpointMs: 600_000 });
  const base = { ...f.base, index: 1, model };
  const x = (seq: number) => ({ shape: [2, 128], data: Float32Array.from({ length: 256 }, (_, i) => Math.sin(seq + i)) });
  const fwd = (seq: number, msgSuffix = '') =>
    f.js.publish(Subject.mailbox('held', 1, 'fwd'), toBytes(x(seq).data), {
      headers: envelope(seq),
      msgID: `test.${seq}${msgSuffix}`,
    });
  const envelope = (seq: number) => {
    const h = headers();
    for (const [k, v] of Object.entries({ [Header.Version]: String(PROTOCOL_VERSION), [Header.Kind]: 'fwd', [Header.Deployment]: 'held', [Header.VNode]: '1', [Header.Seq]: String(seq), [Header.Epoch]: '0', [Header.From]: 'test', [Header.Shape]: '2,128', [Header.DType]: 'f32' })) h.set(k, v);
    return h;
  };
  const consumer = async () => (await f.jsm.consumers.info(Stream.mailbox('held'), `held_1_fwd_e${epoch}`));
  let epoch = 1;
  const events: ActorEvent[] = [];
  const a = await VNodeActor.activate({ ...base, epoch, onEvent: (e) => void events.push(e) });
  const running = a.run();
  try {
    await fwd(0);
    await fwd(1);
    // fwd 0 again under another message id: a real duplicate delivery, applied but not checkpointed.
    await fwd(0, '-again');
    await waitFor('two applied and one duplicate', () => events.filter((e) => e.type === 'applied').length === 2 && events.some((e) => e.type === 'duplicate'));
    assert.is((await consumer()).num_ack_pending, 3, 'nothing acked: no checkpoint yet (the duplicate is held too)');
    assert.is(progressOf((await f.store.read('held', 1))!.meta).schedule.fwdNext, 0, 'KV still holds the activation state');
    await fwd(2); // the third applied: a checkpoint is due
    await waitFor('the checkpoint', () => events.some((e) => e.type === 'checkpointed'));
    await waitFor('the acks', async () => (await consumer()).num_ack_pending === 0);
    assert.is(progressOf((await f.store.read('held', 1))!.meta).schedule.fwdNext, 3);
    const cp = events.find((e) => e.type === 'checkpointed') as Extract<ActorEvent, { type: 'checkpointed' }>;
    assert.is(cp.messages, 4, 'it acked the three applied and the held duplicate');
    // Two more, in memory only; then the owner "dies" (stopped without a flush: a new owner takes over).
    await fwd(3);
    await fwd(4);
    await waitFor('fwd 4 applied', () => events.filter((e) => e.type === 'applied').length === 5);
    epoch = 2;
    const events2: ActorEvent[] = [];
    const b = await VNodeActor.activate({ ...base, epoch, onEvent: (e) => void events2.push(e) });
    const running2 = b.run();
    assert.is(await running, 'fenced', 'the old owner lost its mailbox');
    await waitFor('the replay', () => events2.some((e) => e.type === 'activated'));
    const act = events2.find((e) => e.type === 'activated') as Extract<ActorEvent, { type: 'activated' }>;
    assert.is(act.restored, true);
    assert.is(act.replayed, 2, 'fwd 3 and 4, applied after the checkpoint, replayed');
    assert.is(b.context.schedule.fwdNext, 5);
    b.stop();
    assert.is(await running2, 'stopped');
    assert.is(progressOf((await f.store.read('held', 1))!.meta).schedule.fwdNext, 5, 'a stop flushes a checkpoint');
  } finally {
    a.stop();
    await cleanup(f.ns, f.nc);
  }
});

test('a checkpoint that fails to commit acks nothing: a duplicate it would have covered stays in the mailbox for the restore', async () => {
  // Seen in kill-nats-node: a commit failed in a failover, a redelivered message it covered
  // was acked at once, the restart restored the checkpoint before it, and the message was gone.
  const f = await layer0Fixture('uncommitted');
  const model: ResolvedModel = resolveModel({ ...f.model.spec, pipelineDepth: 8, checkpointEvery: 3, checkpointMs: 600_000 });
  const base = { ...f.base, index: 1, model };
  const envelope = (seq: number) => {
    const h = headers();
    for (const [k, v] of Object.entries({ [Header.Version]: String(PROTOCOL_VERSION), [Header.Kind]: 'fwd', [Header.Deployment]: 'uncommitted', [Header.VNode]: '1', [Header.Seq]: String(seq), [Header.Epoch]: '0', [Header.From]: 'test', [Header.Shape]: '2,128', [Header.DType]: 'f32' })) h.set(k, v);
    return h;
  };
  const fwd = (seq: number, msgSuffix = '') =>
    f.js.publish(Subject.mailbox('uncommitted', 1, 'fwd'), toBytes(Float32Array.from({ length: 256 }, (_, i) => Math.sin(seq + i))), { headers: envelope(seq), msgID: `test.${seq}${msgSuffix}` });
  const events: ActorEvent[] = [];
  const a = await VNodeActor.activate({ ...base, epoch: 1, onEvent: (e) => void events.push(e) });
  const running = a.run().catch((e: unknown) => e);
  try {
    await fwd(0);
    await fwd(1);
    await waitFor('two applied', () => events.filter((e) => e.type === 'applied').length === 2);
    // Someone else writes the state now: the checkpoint of fwd 0–2 will fail its CAS.
    const { state } = await openBuckets(f.nc);
    const key = 'uncommitted.1.meta';
    const entry = await state.get(key);
    assert.ok(entry, `the activation wrote ${key}`);
    await state.put(key, entry!.value);
    await fwd(2);
    await waitFor('fwd 2 applied (its checkpoint is due)', () => events.filter((e) => e.type === 'applied').length === 3);
    // While the actor waits for its next message, its commit fails; then a redelivery of
    // fwd 1 comes, which the failed checkpoint would have covered.
    await new Promise((r) => setTimeout(r, 200));
    await fwd(1, '-again');
    await running;
    await new Promise((r) => setTimeout(r, 300));
    const info = await f.jsm.consumers.info(Stream.mailbox('uncommitted'), 'uncommitted_1_fwd_e1').catch(() => null);
    const subject = Subject.mailbox('uncommitted', 1, 'fwd');
    const stored = await f.jsm.streams.info(Stream.mailbox('uncommitted'), { subjects_filter: subject });
    assert.is(stored.state.subjects?.[subject] ?? 0, 4, `all four messages still in the mailbox, none acked (consumer: ${info ? `${info.num_ack_pending} unacked, ${info.num_pending} pending` : 'gone'})`);
    assert.not.ok(events.some((e) => e.type === 'checkpointed'), 'no checkpoint committed');
  } finally {
    a.stop();
    await cleanup(f.ns, f.nc);
  }
});

test('a message ahead of a gap is put back, not dead-lettered: once the gap is filled both are applied in order', async () => {
  // A send lost in a NATS failover while a later one was stored: fwd 1 arrives, fwd 0 does not (yet).
  const f = await layer0Fixture('gap');
  const model: ResolvedModel = resolveModel({ ...f.model.spec, pipelineDepth: 8 });
  const x = (seq: number) => Float32Array.from({ length: 256 }, (_, i) => Math.cos(seq + i));
  const fwd = (seq: number) => {
    const h = headers();
    for (const [k, v] of Object.entries({ [Header.Version]: String(PROTOCOL_VERSION), [Header.Kind]: 'fwd', [Header.Deployment]: 'gap', [Header.VNode]: '1', [Header.Seq]: String(seq), [Header.Epoch]: '0', [Header.From]: 'test', [Header.Shape]: '2,128', [Header.DType]: 'f32' })) h.set(k, v);
    return f.js.publish(Subject.mailbox('gap', 1, 'fwd'), toBytes(x(seq)), { headers: h, msgID: `gap.${seq}` });
  };
  const events: ActorEvent[] = [];
  const a = await VNodeActor.activate({ ...f.base, model, index: 1, epoch: 1, onEvent: (e) => void events.push(e) });
  const running = a.run();
  try {
    await fwd(1);
    await new Promise((r) => setTimeout(r, 1500)); // delivered, put back, delivered again
    assert.is(events.filter((e) => e.type === 'rejected').length, 0, 'not dead-lettered');
    assert.is(events.filter((e) => e.type === 'applied').length, 0);
    await fwd(0);
    await waitFor('both applied', () => events.filter((e) => e.type === 'applied').length === 2);
    assert.equal(events.filter((e) => e.type === 'applied').map((e) => (e as { seq: number }).seq), [0, 1]);
    assert.is((await f.jsm.streams.info(Stream.deadLetter)).state.messages, 0, 'nothing dead-lettered');
  } finally {
    a.stop();
    await running.catch(() => {});
    await cleanup(f.ns, f.nc);
  }
});

test.run();
