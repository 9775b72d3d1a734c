/**
 * Serving through the VNodes, for real: a run keeps its parameters as served versions
 * (every `versionEvery` steps and at its end, the last one equal to the run's
 * paramsHash); a forward pass hop by hop through the inference responders gives
 * exactly what the offline forward gives on the same version; a pinned version stays
 * pinned; a hop with nobody to answer is retried until someone does; bad requests and
 * junk version records get a clear error and crash nothing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setTimeout as sleep } from 'node:timers/promises';
import '../actors/index.js';
import { cleanup, setup } from '../test/helpers/nats.js';
import { openBuckets } from '../runtime/cluster-state.js';
import { decodeInferReply, encodeInferRequest, InferError, inferSubject } from '../runtime/inference.js';
import { createKernels } from '../runtime/kernels/index.js';
import { loadModelSpec, resolveModel, withOverrides } from '../runtime/model.js';
import { serveInference } from '../runtime/pnode/inference.js';
import { chunkBytesFor, StateStore } from '../runtime/state-store.js';
import { loadVersion, servedVersions } from '../runtime/versions.js';
import { forwardGraph, paramsHash } from '../trainer/evaluate.js';
import { loadTrainingData } from '../trainer/data.js';
import { train } from '../trainer/train.js';
import { vnodeBackend } from './vnode-backend.js';

test('versions are kept and served hop by hop, equal to the offline forward of the same version', async () => {
  const { ns, nc } = await setup();
  try {
    const model = resolveModel(withOverrides(loadModelSpec('mnist-mlp'), { versionEvery: 10 }));
    const kernels = await createKernels();
    const result = await train({ nc, model, steps: 25, batch: 8, seed: 4, kernels, hostLocally: true });
    const buckets = await openBuckets(nc);
    const store = new StateStore(buckets.state, { chunkBytes: chunkBytesFor(nc) });
    const generation = (await buckets.deployments.get(model.spec.name))!.revision;

    // Every 10 steps and the last: the last is the run's parameters.
    assert.equal(await servedVersions(store, model, generation), [10, 20, 25]);
    const v25 = await loadVersion(store, model, generation, 25);
    const v10 = await loadVersion(store, model, generation, 10);
    assert.is(paramsHash(model, v25), result.paramsHash);
    assert.is.not(paramsHash(model, v10), result.paramsHash);
    // An earlier generation's versions do not pass for this one's.
    assert.equal(await servedVersions(store, model, generation + 1000), []);

    const responder = serveInference({ nc, store, kernels, log: () => {} });
    for (const v of model.vnodes) responder.attach({ model, seed: 4, generation }, v.index);
    const data = loadTrainingData(model);
    const x = { shape: [5, 784], data: data.held.x.slice(0, 5 * 784) };

    const pinned = await vnodeBackend({ nc, store, model, generation, version: 10 });
    const latest = await vnodeBackend({ nc, store, model, generation, version: 'latest' });
    assert.equal(pinned.version(), { id: '10', paramsHash: paramsHash(model, v10) });
    assert.equal(latest.version(), { id: '25', paramsHash: result.paramsHash });
    for (const [backend, tensors] of [[pinned, v10], [latest, v25]] as const) {
      const served = await backend.forward(x, backend.version(), Date.now() + 10_000);
      const offline = await forwardGraph(kernels, model, tensors, x);
      assert.equal(served.shape, [5, 10]);
      assert.equal(Array.from(served.data), Array.from(offline.data), 'bit for bit');
    }
    assert.is(pinned.stats().hops, model.vnodes.length, 'one hop per VNode');

    // A version that is not served is refused by name.
    try {
      await vnodeBackend({ nc, store, model, generation, version: 15 });
      assert.unreachable('version 15 is not kept');
    } catch (err) {
      assert.match((err as Error).message, /no served version 15: served versions are 10, 20, 25/);
    }

    // Nobody answers VNode 2 for a while (its owner died): the hop is retried until someone does.
    responder.detach(model.spec.name, 2);
    const again = pinned.forward(x, pinned.version(), Date.now() + 10_000);
    await sleep(300);
    responder.attach({ model, seed: 4, generation }, 2);
    const late = await again;
    assert.equal(Array.from(late.data), Array.from((await forwardGraph(kernels, model, v10, x)).data));
    assert.ok(pinned.stats().retries > 0, 'retried');

    // Bad requests: an error reply each, and the responder still answers afterwards.
    const ask = async (bytes: Uint8Array) => decodeInferReply((await nc.request(inferSubject(model.spec.name, 0), bytes, { timeout: 5000 })).data);
    const refusals: Array<[Uint8Array, RegExp]> = [
      [new Uint8Array([1, 2]), /too short/],
      [new TextEncoder().encode('\u0004\u0000\u0000\u0000nope'), /not JSON/],
      [encodeInferRequest({ generation, step: 10 }, [{ shape: [2, 7], data: new Float32Array(14) }]), /takes \[rows, 784\]/],
      [encodeInferRequest({ generation, step: 10 }, [{ shape: [1, 784], data: new Float32Array(784).fill(NaN) }]), /must be finite/],
      [encodeInferRequest({ generation, step: 15 }, [{ shape: [1, 784], data: new Float32Array(784) }]), /version 15 of mnist-mlp.0 is not stored/],
      [encodeInferRequest({ generation: generation + 1, step: 10 }, [{ shape: [1, 784], data: new Float32Array(784) }]), /deployment was replaced/],
    ];
    for (const [bytes, why] of refusals) {
      try {
        await ask(bytes);
        assert.unreachable(String(why));
      } catch (err) {
        assert.instance(err, InferError);
        assert.match((err as Error).message, why);
      }
    }
    // Junk over a version record: a clear error, not a crash.
    await buckets.state.put(`${model.spec.name}.0.v.20`, new TextEncoder().encode('{"junk":1}'));
    try {
      await ask(encodeInferRequest({ generation, step: 20 }, [{ shape: [1, 784], data: new Float32Array(784) }]));
      assert.unreachable('junk version');
    } catch (err) {
      assert.match((err as Error).message, /mnist-mlp.0.v.20: not a version record/);
    }
    assert.equal((await ask(encodeInferRequest({ generation, step: 25 }, [{ shape: [1, 784], data: data.held.x.slice(0, 784) }]))).shape, [1, 128]);
    assert.ok(responder.counts().refused >= refusals.length + 1);

    await pinned.close();
    await latest.close();
    responder.stop();
  } finally {
    await cleanup(ns, nc);
  }
});

test('while training goes on, latest only moves forward, to versions complete and committed; a pinned one never moves', async () => {
  const { ns, nc } = await setup();
  try {
    const model = resolveModel(withOverrides(loadModelSpec('mnist-mlp'), { versionEvery: 5 }));
    const kernels = await createKernels();
    const buckets = await openBuckets(nc);
    const store = new StateStore(buckets.state, { chunkBytes: chunkBytesFor(nc) });
    const training = train({ nc, model, steps: 40, batch: 8, seed: 6, kernels, hostLocally: true });
    // The first version of this run (its deployment record is written first).
    let generation = -1;
    let first: number | undefined;
    while (first === undefined) {
      const e = await buckets.deployments.get(model.spec.name);
      if (e && e.length > 0) {
        generation = e.revision;
        first = (await servedVersions(store, model, generation))[0];
      }
      if (first === undefined) await sleep(20);
    }
    const latest = await vnodeBackend({ nc, store, model, generation, version: 'latest', pollMs: 20 });
    const pinned = await vnodeBackend({ nc, store, model, generation, version: first });
    const seen: string[] = [];
    let done = false;
    void training.finally(() => (done = true));
    while (!done) {
      const id = latest.version().id;
      if (seen.at(-1) !== id) {
        seen.push(id);
        // Complete and committed when it is taken: every VNode's committed checkpoint covers it.
        assert.ok((await servedVersions(store, model, generation)).includes(Number(id)), `version ${id} served`);
      }
      assert.is(pinned.version().id, String(first));
      await sleep(10);
    }
    const result = await training;
    await sleep(100); // one more poll after the last commit
    const ids = [...seen, latest.version().id].map(Number);
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i] >= ids[i - 1], `forward only: ${ids.join(' → ')}`);
    assert.is(latest.version().id, '40');
    assert.is(latest.version().paramsHash, result.paramsHash);
    await latest.close();
    await pinned.close();
  } finally {
    await cleanup(ns, nc);
  }
});

test.run();
