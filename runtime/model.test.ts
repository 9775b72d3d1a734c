/** The built-in models resolve against the registered types, with the shapes they promise. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import '../actors/index.js';
import { BUILTIN_MODELS, loadModelSpec, resolveModel, stateBytesOf } from './model.js';
import { fileURLToPath } from 'node:url';
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


const dense = (units: number) => ({ type: 'layer.dense', config: { units } });
const graph = (vnodes: unknown[]) => ({ name: 'g', vnodes });
const LOSS = { type: 'loss.softmaxCrossEntropy' };

test('a residual graph: inputs by name, fan-out, merge; consumers in index-then-slot order; depths never grow along an edge', () => {
  const m = resolveModel(loadModelSpec(fileURLToPath(new URL('../examples/residual-mlp.json', import.meta.url))));
  assert.equal(m.vnodes.map((v) => v.inputs), [[-1], [0], [1], [2], [1, 3], [4], [5], [4, 6], [7], [8]]);
  assert.equal(m.vnodes[1].consumers, [{ index: 2, slot: 0 }, { index: 4, slot: 0 }], 'h0 fans out to the block and the merge');
  assert.equal(m.vnodes[4].consumers, [{ index: 5, slot: 0 }, { index: 7, slot: 0 }]);
  // The merge's gradient for its second input goes to b1's only consumer port; h0's merge is its second consumer.
  assert.equal(m.vnodes[4].gradPorts, ['bwd1', 'bwd']);
  assert.equal(m.vnodes[7].gradPorts, ['bwd1', 'bwd']);
  for (const v of m.vnodes) for (const c of v.consumers) assert.ok(m.vnodes[c.index].depth <= v.depth, `depth of ${c.index} <= depth of ${v.index}`);
  assert.is(m.vnodes[0].depth, 2);
  assert.is(m.vnodes[9].depth, 0);
  // A chain written with explicit inputs is the chain.
  const chain = resolveModel(loadModelSpec('mnist-mlp'));
  const explicit = resolveModel({ ...BUILTIN_MODELS['mnist-mlp'], vnodes: BUILTIN_MODELS['mnist-mlp'].vnodes.map((v, i) => ({ ...v, inputs: [i === 0 ? 'input' : i - 1] })) });
  assert.equal(explicit.vnodes.map((v) => [v.inputs, v.consumers, v.depth, v.gradPorts]), chain.vnodes.map((v) => [v.inputs, v.consumers, v.depth, v.gradPorts]));
});

test('graph mistakes are refused, each naming its field', () => {
  const cases: Array<[string, unknown[], RegExp]> = [
    ['a later VNode (a cycle)', [dense(10), { ...dense(10), inputs: [2] }, { type: 'activation.relu', name: 'r' }, LOSS], /vnodes\[1\]\.inputs\[0\]: 2 is not an earlier VNode.*cycle/],
    ['itself', [dense(10), { ...dense(10), name: 'me', inputs: ['me'] }, LOSS], /vnodes\[1\]\.inputs\[0\]: "me" is not an earlier VNode/],
    ['an unknown name', [dense(10), { ...dense(10), inputs: ['nope'] }, LOSS], /vnodes\[1\]\.inputs\[0\]: no VNode is named "nope"/],
    ['a dangling output', [{ ...dense(10), name: 'a' }, dense(10), { ...dense(10), inputs: ['a'] }, LOSS], /vnodes\[1\] \(layer\.dense\): its output goes nowhere/],
    ['the dataset read twice', [dense(10), { ...dense(10), inputs: ['input'] }, LOSS], /vnodes\[1\]\.inputs\[0\]: only the first VNode reads the dataset/],
    ['two inputs to a dense', [{ ...dense(10), name: 'a' }, { ...dense(10), name: 'b' }, { ...dense(10), inputs: ['a', 'b'] }, LOSS], /vnodes\[2\]\.inputs: layer\.dense reads one input/],
    ['a merge of one', [dense(10), { type: 'merge.add', inputs: [0] }, LOSS], /vnodes\[1\]\.inputs: merge\.add merges two or more inputs/],
    ['a merge of two shapes', [{ ...dense(20), name: 'a' }, { ...dense(10), name: 'b' }, { type: 'merge.add', inputs: ['a', 'b'] }, LOSS], /vnodes\[2\]\.inputs: merge\.add needs inputs of one shape; inputs\[0\] gives 20 .* inputs\[1\] gives 10/],
    ['a duplicate name', [{ ...dense(10), name: 'a' }, { ...dense(10), name: 'a' }, LOSS], /vnodes\[1\]\.name: "a" is already the name of vnodes\[0\]/],
    ['the reserved name', [{ ...dense(10), name: 'input' }, LOSS], /vnodes\[0\]\.name: "input" is reserved/],
  ];
  for (const [name, vnodes, error] of cases) assert.throws(() => resolveModel(graph(vnodes)), error, name);
});

test('placement estimates: a text model counts every position of a window as a row; mnist estimates are unchanged', () => {
  const mnist = resolveModel(loadModelSpec('mnist-mlp'));
  for (const v of mnist.vnodes) assert.is(stateBytesOf(v, 64, mnist.spec), stateBytesOf(v, 64));
  const gpt = resolveModel(loadModelSpec('names-gpt'));
  const attention = gpt.vnodes.find((v) => v.def.type === 'layer.attention')!;
  // Its stash (x and Q|K|V per forward in flight) grows with batch × 16 positions, not batch.
  const C = 64;
  const perRow = (b: (n: number) => number) => b(2) - b(1);
  assert.is(perRow((n) => stateBytesOf(attention, n, gpt.spec)), 4 * attention.depth * 4 * 16 * C);
  const embedding = gpt.vnodes[0];
  assert.is(perRow((n) => stateBytesOf(embedding, n, gpt.spec)), 4 * embedding.depth * 16, 'one stashed id per position');
});

test.run();
