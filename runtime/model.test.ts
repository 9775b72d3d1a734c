/** The built-in models resolve against the registered types, with the shapes they promise. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../actors/index.js';
import { BUILTIN_MODELS, loadModelSpec, resolveModel } from './model.js';
import { Limits } from './protocol.js';

const features = (name: string) => resolveModel(loadModelSpec(name)).vnodes.map((v) => [v.def.type, v.inFeatures, v.outFeatures]);

test('mnist-mlp is 784-128-64-10', () => {
  assert.equal(features('mnist-mlp'), [
    ['layer.dense', 784, 128], ['activation.relu', 128, 128], ['layer.dense', 128, 64],
    ['activation.relu', 64, 64], ['layer.dense', 64, 10], ['loss.softmaxCrossEntropy', 10, 10],
  ]);
});

test('wide-mlp is 784-2048-2048-10, depth 2, Adam 1e-3, and its batch-256 activations fit the tensor limit', () => {
  assert.equal(features('wide-mlp'), [
    ['layer.dense', 784, 2048], ['activation.relu', 2048, 2048], ['layer.dense', 2048, 2048],
    ['activation.relu', 2048, 2048], ['layer.dense', 2048, 10], ['loss.softmaxCrossEntropy', 10, 10],
  ]);
  const spec = BUILTIN_MODELS['wide-mlp'];
  assert.is(spec.pipelineDepth, 2);
  for (const v of spec.vnodes.filter((v) => v.type === 'layer.dense')) assert.equal(v.config.optimizer, { kind: 'adam', lr: 0.001 });
  assert.equal(spec.vnodes.filter((v) => v.type === 'layer.dense').map((v) => v.config.init), ['he', 'he', 'xavier']);
  const activationBytes = 256 * 2048 * 4;
  assert.is(activationBytes, 2 * 1024 * 1024);
  assert.ok(activationBytes > 1024 * 1024 && activationBytes <= Limits.maxTensorBytes, 'over NATS default 1 MiB, within ours');
});

test.run();
