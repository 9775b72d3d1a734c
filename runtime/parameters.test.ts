/**
 * Parameters as named, shaped tensors: the names and shapes of the built-in models, the
 * declared shapes agree with what each type's init makes, a type that declares none gets
 * [length], and reading them back checks names, shapes and values.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { z } from 'zod';
import '../actors/index.js';
import { paramsHash } from '../trainer/evaluate.js';
import { BUILTIN_MODELS, resolveModel, type ResolvedModel } from './model.js';
import { fromNamedTensors, parameterSlots, toNamedTensors } from './parameters.js';
import { registerVNodeType } from './registry.js';
import { createRng } from './rng.js';
import { defineVNodeType, type Tensors } from './vnode-type.js';

/** Every VNode's tensors as its type's init makes them. */
const initOf = (model: ResolvedModel): Tensors[] =>
  model.vnodes.map((v, i) => (v.def.role === 'loss' || !v.def.init ? {} : v.def.init({ config: v.config, inFeatures: v.inFeatures, outFeatures: v.outFeatures, rng: createRng(`t/${i}`) })));

test('mnist-mlp: <index>.<param>, dense W as [in, out]', () => {
  const slots = parameterSlots(resolveModel(BUILTIN_MODELS['mnist-mlp']));
  assert.equal(
    slots.map((s) => [s.name, s.shape]),
    [['0.W', [784, 128]], ['0.b', [128]], ['2.W', [128, 64]], ['2.b', [64]], ['4.W', [64, 10]], ['4.b', [10]]],
  );
});

test('names-gpt: a named VNode is named by its name; every declared shape holds exactly what init makes', () => {
  const model = resolveModel(BUILTIN_MODELS['names-gpt']);
  const slots = parameterSlots(model);
  const byName = new Map(slots.map((s) => [s.name, s.shape]));
  assert.equal(byName.get('x0.tok'), [27, 64]);
  assert.equal(byName.get('x0.pos'), [16, 64]);
  assert.equal(byName.get('1.gamma'), [64]);
  assert.equal(byName.get('x1_attn.Wq'), [64, 64]);
  assert.equal(byName.get('x1_attn.bo'), [64]);
  assert.equal(byName.get('5.W'), [64, 256]);
  assert.equal(byName.get('x1_mlp.W'), [256, 64]);
  const made = initOf(model);
  for (const s of slots) assert.is(s.shape.reduce((a, b) => a * b, 1), made[s.index][s.param].length, `${s.name}: shape [${s.shape}] holds init's ${made[s.index][s.param].length}`);
  const named = toNamedTensors(model, made);
  assert.is(named.length, slots.length);
  // And back: the same parameters, the same hash.
  assert.is(paramsHash(model, fromNamedTensors(model, named)), paramsHash(model, made));
});

test('a type that declares no shapes gets [length]', () => {
  registerVNodeType(
    defineVNodeType({
      type: 'layer.scaleForParams',
      version: 1,
      role: 'layer',
      description: 'x·s, one scale per feature (test)',
      config: z.object({}),
      parameters: ['s'],
      init: ({ inFeatures }) => ({ s: new Float32Array(inFeatures).fill(1) }),
      async forward(_ctx, t, x) {
        return { y: { shape: x.shape, data: x.data.map((v, i) => v * t.s[i % t.s.length]) } };
      },
      async backward() {
        return {};
      },
    }),
  );
  const model = resolveModel({ name: 'scaled', vnodes: [{ type: 'layer.dense', config: { units: 10 } }, { type: 'layer.scaleForParams', name: 'scale' }, { type: 'loss.softmaxCrossEntropy' }] });
  assert.equal(parameterSlots(model).map((s) => [s.name, s.shape]), [['0.W', [784, 10]], ['0.b', [10]], ['scale.s', [10]]]);
});

test('reading named tensors back: missing, extra, misshapen and non-finite tensors are refused, each naming itself', () => {
  const model = resolveModel(BUILTIN_MODELS['mnist-mlp']);
  const named = toNamedTensors(model, initOf(model));
  const without = (name: string) => named.filter((t) => t.name !== name);
  assert.throws(() => fromNamedTensors(model, without('2.b')), /it has no tensor 2\.b, a parameter of model mnist-mlp \(layer\.dense \[64\]\)/);
  assert.throws(() => fromNamedTensors(model, [...named, { name: 'head.W', shape: [1], data: new Float32Array(1) }]), /it has tensor head\.W that model mnist-mlp does not have \(its parameters: 0\.W, 0\.b/);
  const transposed = named.map((t) => (t.name === '0.W' ? { ...t, shape: [128, 784] } : t));
  assert.throws(() => fromNamedTensors(model, transposed), /tensor 0\.W has shape \[128,784\], model mnist-mlp needs \[784,128\]/);
  const inf = named.map((t) => (t.name === '4.b' ? { ...t, data: Float32Array.from(t.data, (x, i) => (i === 7 ? -Infinity : x)) } : t));
  assert.throws(() => fromNamedTensors(model, inf), /tensor 4\.b has a non-finite value \(-Infinity\) at flat index 7/);
  assert.throws(() => toNamedTensors(model, initOf(model).map((t, i) => (i === 2 ? { ...t, b: new Float32Array(3) } : t))), /mnist-mlp\.2: parameter b holds 3 values, its shape \[64\] says 64/);
});

test.run();
