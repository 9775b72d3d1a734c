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
import { createKernels } from './kernels/index.js';
import { BUILTIN_MODELS, resolveModel } from './model.js';
import { Header, PROTOCOL_VERSION, Stream, Subject } from './protocol.js';
import { registerVNodeType } from './registry.js';
import { toBytes } from './tensor.js';
import { train } from '../trainer/train.js';
import { defineVNodeType } from './vnode-type.js';

const kernels = await createKernels();
const STEPS = 30;
const BATCH = 16;

test('malformed messages are rejected, counted and dead-lettered; training is unaffected', async () => {
  const { ns, nc } = await setup({ maxPayload: 4 * 1024 * 1024 });
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
      { name: 'oversize', subject: Subject.mailbox('attacked', 0, 'fwd'), payload: new Uint8Array(2 * 1024 * 1024), headers: h({ [Header.Shape]: `${(2 * 1024 * 1024) / 4 / 784 | 0},784` }), error: /over the 1048576-byte limit/ },
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
    assert.ok(result.testAccuracy > 0.7, `accuracy ${result.testAccuracy}`);
  } finally {
    await cleanup(ns, nc);
  }
});

test.run();
