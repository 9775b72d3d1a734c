/**
 * The trainer reads per-step losses from a subject anyone can publish on: junk there
 * must be skipped, never stop training (found by the dashboard's junk-event test).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { jetstream } from '@nats-io/jetstream';
import '../actors/index.js';
import { cleanup, setup } from '../test/helpers/nats.js';
import { createKernels } from '../runtime/kernels/index.js';
import { loadModelSpec, resolveModel } from '../runtime/model.js';
import { Subject } from '../runtime/protocol.js';
import { train } from './train.js';
import { parseStepMetric } from '../runtime/records.js';

const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));

test('parseStepMetric accepts a step metric of the run and nothing else', () => {
  assert.equal(parseStepMetric(enc({ seq: 3, loss: 0.5, batch: 8, vnode: 'm.5' }), 10), { seq: 3, loss: 0.5, batch: 8, vnode: 'm.5' });
  for (const bad of ['null', '{', '[]', '"x"', { seq: -1, loss: 1, batch: 1 }, { seq: 10, loss: 1, batch: 1 }, { seq: 1.5, loss: 1, batch: 1 }, { seq: 1, loss: 'NaN', batch: 1 }, { seq: 1, loss: 1, batch: 0 }]) {
    assert.is(parseStepMetric(enc(bad), 10), null, JSON.stringify(bad));
  }
});

test('junk on the metrics subject mid-run does not stop training', async () => {
  const { ns, nc } = await setup();
  try {
    const model = resolveModel(loadModelSpec('mnist-mlp'));
    const js = jetstream(nc);
    let injected = false;
    const result = await train({
      nc,
      model,
      steps: 30,
      batch: 8,
      seed: 2,
      kernels: await createKernels(),
      hostLocally: true,
      onProgress: ({ done }) => {
        if (!injected && done >= 5) {
          injected = true;
          for (const junk of ['null', '{not json', JSON.stringify({ seq: 'x' }), JSON.stringify({ seq: 999, loss: 1, batch: 1 })]) {
            void js.publish(Subject.metrics(model.spec.name), enc(junk));
          }
        }
      },
    });
    assert.ok(injected);
    assert.is(result.steps, 30);
    assert.is(result.losses.filter((l) => l !== undefined).length, 30);
  } finally {
    await cleanup(ns, nc);
  }
});

test.run();
