/**
 * Initial parameters through KV (`dcnr train --init`), on a real nats-server: a VNode
 * without state starts from exactly the given parameters (optimizer slots fresh), read
 * back in chunks; and every way a deployment record can name them wrongly is refused at
 * activation with a sentence saying what, before anything is committed (invariant 7).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import '../actors/index.js';
import { cleanup, setup } from '../test/helpers/nats.js';
import { openBuckets } from './cluster-state.js';
import { loadInitialParameters, removeInitialParameters, writeInitialParameters, type InitialParameters } from './initial-parameters.js';
import { createKernels } from './kernels/index.js';
import { ensureDeploymentStreams } from './mailbox.js';
import { BUILTIN_MODELS, resolveModel } from './model.js';
import { stateInitKey } from './protocol.js';
import { parseDeploymentRecord } from './records.js';
import { createRng } from './rng.js';
import { StateStore } from './state-store.js';
import { VNodeActor } from './vnode-actor.js';
import type { Tensors } from './vnode-type.js';

const kernels = await createKernels();
const HASH = 'a'.repeat(64);

/** mnist-mlp's parameters, all drawn from one seeded normal: clearly not any type's init. */
function givenParameters(model: ReturnType<typeof resolveModel>): Tensors[] {
  const rng = createRng('given');
  return model.vnodes.map((v) => {
    const made = v.def.role === 'loss' || !v.def.init ? {} : v.def.init({ config: v.config, inFeatures: v.inFeatures, outFeatures: v.outFeatures, rng: createRng('x') });
    return Object.fromEntries((v.def.parameters ?? []).map((p) => [p, Float32Array.from(made[p], () => rng.normal())]));
  });
}

async function fixture(name: string) {
  const { ns, nc } = await setup();
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const buckets = await openBuckets(nc);
  // Small chunks: W of layer 0 (392 KiB) is read back from 7 of them.
  const store = new StateStore(buckets.state, { chunkBytes: 64 * 1024 });
  const model = resolveModel({ ...BUILTIN_MODELS['mnist-mlp'], name });
  await ensureDeploymentStreams(jsm, name);
  const given = givenParameters(model);
  const init = await writeInitialParameters(store, model, given, { paramsHash: HASH, source: 'given.safetensors' });
  const base = { nc, js, jsm, store, kernels, model, seed: 5, generation: 1 };
  return { ns, nc, buckets, store, model, given, init, base };
}

test('a VNode without state starts from the given parameters; its optimizer slots start fresh', async () => {
  const f = await fixture('given');
  try {
    assert.is(f.init.tensors[0].W.chunks, 7, 'W is chunked');
    assert.equal(f.init.tensors[1], {}, 'relu has no parameters');
    const actor = await VNodeActor.activate({ ...f.base, index: 0, epoch: 1, init: f.init });
    assert.equal(Array.from(actor.tensors.W), Array.from(f.given[0].W));
    assert.equal(Array.from(actor.tensors.b), Array.from(f.given[0].b));
    assert.ok(actor.tensors.W_m.every((x) => x === 0) && actor.tensors.W_v.every((x) => x === 0), 'Adam moments as init makes them');
    const committed = await f.store.load((await f.store.read('given', 0))!.meta);
    assert.equal(Array.from(committed.tensors.W), Array.from(f.given[0].W), 'the first commit holds them');
    // A VNode without parameters activates as ever.
    const relu = await VNodeActor.activate({ ...f.base, index: 1, epoch: 1, init: f.init });
    assert.equal(Object.keys(relu.tensors), []);
    // Restored state wins over the init: a second activation restores what was committed.
    actor.stop();
    await actor.run();
    const again = await VNodeActor.activate({ ...f.base, index: 0, epoch: 2, init: { ...f.init, tensors: [{}, {}, {}, {}, {}, {}] } });
    assert.equal(Array.from(again.tensors.W), Array.from(f.given[0].W));
    again.stop();
    await again.run();
    relu.stop();
    await relu.run();
  } finally {
    await cleanup(f.ns, f.nc);
  }
});

test('a record that names the initial parameters wrongly is refused at activation, naming the problem; nothing is committed', async () => {
  const f = await fixture('bad');
  try {
    const W = f.init.tensors[0].W;
    const b = f.init.tensors[0].b;
    const withRefs = (refs: InitialParameters['tensors'][number]): InitialParameters => ({ ...f.init, tensors: [refs, ...f.init.tensors.slice(1)] });
    // A NaN, written and hashed properly: only the values are wrong.
    const nan = await writeInitialParameters(f.store, f.model, f.given.map((t, i) => (i === 0 ? { ...t, b: Float32Array.from(t.b, (x, j) => (j === 3 ? NaN : x)) } : t)), { paramsHash: HASH });
    const cases: Array<[string, InitialParameters, RegExp]> = [
      ['a parameter missing', withRefs({ W }), /bad\.0: the deployment's initial parameters \(given\.safetensors\) name W for this layer\.dense, whose parameters are W, b/],
      ['a parameter too many', withRefs({ W, b, extra: b }), /name W, b, extra for this layer\.dense, whose parameters are W, b/],
      ['another VNode\'s key', withRefs({ W: { ...W, key: stateInitKey('bad', 2, 'W') }, b }), /keep W under "bad\.2\.init\.W", not its own key bad\.0\.init\.W/],
      ['a wrong length', withRefs({ W: { ...W, length: 10 }, b }), /give W 10 values; this layer\.dense has 100352/],
      ['no hash', withRefs({ W: { key: W.key, length: W.length, chunks: W.chunks }, b }), /give W no hash: refused/],
      ['a wrong hash', withRefs({ W: { ...W, sha256: b.sha256 }, b }), /state blob bad\.0\.init\.W does not hash as its record says/],
      ['absurd chunks', withRefs({ W: { ...W, chunks: 1e9 }, b }), /split W into 1000000000 chunks, more than its 100352 values can fill/],
      ['fewer VNodes', { ...f.init, tensors: [] }, /cover 0 VNodes, not VNode 0/],
      ['a non-finite value', nan, /b has a non-finite value \(NaN\) at index 3/],
    ];
    for (const [name, init, message] of cases) {
      const err = await VNodeActor.activate({ ...f.base, index: 0, epoch: 1, init }).then(() => null, (e: Error) => e);
      assert.instance(err, Error, `${name}: refused`);
      assert.match(err!.message, message, name);
      assert.is(await f.store.read('bad', 0), null, `${name}: nothing committed`);
    }
    // A blob deleted after the record was written.
    await f.buckets.state.delete(b.key);
    const deleted = await VNodeActor.activate({ ...f.base, index: 0, epoch: 1, init: f.init }).then(() => null, (e: Error) => e);
    assert.match(deleted!.message, /bad\.0: the deployment's initial parameters \(given\.safetensors\): state blob bad\.0\.init\.b is missing/);
    await f.store.writeBlob(b.key, f.given[0].b);
    // A blob overwritten after the record was written: its hash no longer matches.
    await f.buckets.state.put(`${W.key}.c2`, new Uint8Array(64 * 1024));
    const overwritten = await loadInitialParameters(f.store, 'bad', f.model.vnodes[0], f.init, { W: new Float32Array(W.length), b: new Float32Array(b.length) }).then(
      () => null,
      (e: Error) => e,
    );
    assert.match(overwritten!.message, /bad\.0: the deployment's initial parameters \(given\.safetensors\): state blob bad\.0\.init\.W does not hash as its record says/);
  } finally {
    await cleanup(f.ns, f.nc);
  }
});

test('the deployment record parser checks the init field; removing a run\'s init deletes only its own keys', async () => {
  const f = await fixture('gc');
  try {
    const record = { spec: BUILTIN_MODELS['mnist-mlp'], seed: 1, batch: 8, steps: 10, createdAt: 'now' };
    assert.ok(parseDeploymentRecord(JSON.stringify({ ...record, init: f.init })).ok);
    const bad = parseDeploymentRecord(JSON.stringify({ ...record, init: { ...f.init, paramsHash: 'nope' } }));
    assert.ok(!bad.ok && /deployment record: init\.paramsHash/.test(bad.error), JSON.stringify(bad));
    const notRefs = parseDeploymentRecord(JSON.stringify({ ...record, init: { ...f.init, tensors: [{ W: { key: 1 } }] } }));
    assert.ok(!notRefs.ok && /init\.tensors\.0\.W/.test(notRefs.error), JSON.stringify(notRefs));

    // A record naming someone else's key: that key survives the purge.
    await f.buckets.state.put('other.0.meta', new TextEncoder().encode('{}'));
    const hostile: InitialParameters = { ...f.init, tensors: [{ ...f.init.tensors[0], b: { key: 'other.0.meta', length: 1, chunks: 0, sha256: f.init.tensors[0].b.sha256 } }, ...f.init.tensors.slice(1)] };
    await removeInitialParameters(f.store, 'gc', hostile);
    assert.ok((await f.buckets.state.get('other.0.meta'))?.operation === 'PUT', 'a foreign key is left alone');
    const gone = await f.buckets.state.get(`${f.init.tensors[0].W.key}.c0`);
    assert.ok(!gone || gone.operation !== 'PUT', 'its own blobs are deleted');
    assert.ok((await f.buckets.state.get(f.init.tensors[0].b.key))?.operation === 'PUT', 'b, named under a foreign key there, is not touched');
  } finally {
    await cleanup(f.ns, f.nc);
  }
});

test.run();
