/**
 * VNode types from outside the repository: a type file in a temp dir (no package.json,
 * importing only `dcnr`) trains with `dcnr train --types FILE` in one process and on two
 * PNodes, to the same paramsHash. On a cluster where only one PNode knows the type, the
 * VNode of that type is only ever placed there — also after that PNode dies and a PNode
 * that knows it joins. Bad `--types` files are refused with a clear line.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../actors/index.js';
import { startLocalCluster } from '../cluster/local-cluster.js';
import { connectNats } from '../cluster/process.js';
import { waitForPNodes } from '../cluster/view.js';
import { subscribeClusterEvents } from '../runtime/cluster-state.js';
import { createKernels } from '../runtime/kernels/index.js';
import { loadModelSpec, resolveModel } from '../runtime/model.js';
import type { ClusterEvent } from '../runtime/protocol.js';
import { loadVNodeTypes, TYPES_ENV } from '../runtime/types-loader.js';
import { train } from '../trainer/train.js';
import { tempDir } from './helpers/nats.js';

const bin = fileURLToPath(new URL('../bin/dcnr.js', import.meta.url));
const dir = tempDir('dcnr-types-');
const typeFile = join(dir, 'leaky-relu.ts');
writeFileSync(
  typeFile,
  `import { defineVNodeType, z } from 'dcnr';
export const leakyRelu = defineVNodeType({
  type: 'activation.leakyRelu',
  version: 1,
  role: 'activation',
  description: 'max(x, slope·x)',
  config: z.object({ slope: z.number().min(0).max(1).default(0.01) }),
  async forward({ config }, _tensors, x) {
    return { y: { shape: x.shape, data: x.data.map((v) => (v > 0 ? v : config.slope * v)) }, stash: [x.data] };
  },
  async backward({ config }, _tensors, dy, [x]) {
    return { dx: { shape: dy.shape, data: dy.data.map((g, i) => (x[i] > 0 ? g : config.slope * g)) } };
  },
});
`,
);
const modelFile = join(dir, 'leaky-mlp.json');
writeFileSync(
  modelFile,
  JSON.stringify({
    name: 'leaky-mlp',
    vnodes: [
      { type: 'layer.dense', config: { units: 32, init: 'he', optimizer: { kind: 'adam', lr: 0.001 } } },
      { type: 'activation.leakyRelu', config: { slope: 0.05 } },
      { type: 'layer.dense', config: { units: 10, init: 'xavier', optimizer: { kind: 'adam', lr: 0.001 } } },
      { type: 'loss.softmaxCrossEntropy' },
    ],
  }),
);

const dcnr = (args: string[]) => {
  const env = { ...process.env };
  delete env[TYPES_ENV];
  return spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env, timeout: 240_000 });
};
const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').pop()!);

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('dcnr train --types FILE: one process and two PNodes give the same paramsHash', () => {
  const args = ['train', '--types', typeFile, '--model', modelFile, '--steps', '60', '--batch', '32', '--json'];
  const local = dcnr([...args, '--pnodes', '0', '--store', join(dir, 's0')]);
  assert.is(local.status, 0, local.stderr);
  const cluster = dcnr([...args, '--pnodes', '2', '--store', join(dir, 's2')]);
  assert.is(cluster.status, 0, cluster.stderr);
  const [a, b] = [lastJson(local.stdout), lastJson(cluster.stdout)];
  assert.is(a.model, 'leaky-mlp');
  assert.is(b.pnodes, 2);
  assert.is(a.paramsHash, b.paramsHash);
  // Without the file the model does not resolve, and says why.
  const without = dcnr(['train', '--model', modelFile, '--steps', '5', '--pnodes', '0', '--store', join(dir, 's-none')]);
  assert.is.not(without.status, 0);
  assert.match(without.stderr, /unknown VNode type "activation\.leakyRelu"/);
});

test('bad --types files are refused with one clear line', () => {
  const missing = dcnr(['train', '--types', join(dir, 'nope.ts'), '--steps', '5']);
  assert.is.not(missing.status, 0);
  assert.match(missing.stderr, /--types: .*nope\.ts does not exist/);
  const empty = join(dir, 'empty.ts');
  writeFileSync(empty, 'export const answer = 42;\n');
  const none = dcnr(['train', '--types', empty, '--steps', '5']);
  assert.is.not(none.status, 0);
  assert.match(none.stderr, /defines no new VNode type/);
  const broken = join(dir, 'broken.ts');
  writeFileSync(broken, 'export const x = ;\n');
  const bad = dcnr(['train', '--types', broken, '--steps', '5']);
  assert.is.not(bad.status, 0);
  assert.match(bad.stderr, /broken\.ts could not be loaded/);
});

test('a PNode that does not know a type never gets a VNode of it', async () => {
  await loadVNodeTypes([typeFile]); // this process trains (and resolves the model) too
  const storeDir = join(dir, 'mixed');
  // pnode-1 and pnode-3 know the type; pnode-2 does not.
  const cluster = await startLocalCluster({ pnodes: 2, storeDir, pnodeEnv: (name) => ({ [TYPES_ENV]: name === 'pnode-2' ? undefined : typeFile }) });
  const nc = await connectNats(cluster.url, 'types-test');
  const events: ClusterEvent[] = [];
  subscribeClusterEvents(nc, (e) => void events.push(e));
  try {
    await waitForPNodes(nc, 2);
    const model = resolveModel(loadModelSpec(modelFile));
    const kernels = await createKernels();
    let killed = false;
    const result = await train({
      nc,
      model,
      steps: 80,
      batch: 32,
      seed: 1,
      kernels,
      onProgress: ({ done }) => {
        if (done >= 30 && !killed) {
          // The only PNode that knows the type dies: the VNode waits for one that does.
          killed = true;
          cluster.procs.get('pnode-1')!.kill('SIGKILL');
          setTimeout(() => void cluster.spawnPNode("pnode-3"), 1500);
        }
      },
    });
    assert.ok(result.paramsHash.length === 64);
    const placements = events.filter((e): e is Extract<ClusterEvent, { type: 'assigned' }> => e.type === 'assigned' && e.vnode === 'leaky-mlp.1');
    assert.ok(placements.length >= 2, `placed at start and after the death: ${JSON.stringify(placements)}`);
    assert.ok(placements.every((p) => p.pnode !== 'pnode-2'), `never on pnode-2: ${placements.map((p) => p.pnode).join(', ')}`);
    const hostedOn2 = events.filter((e) => e.type === 'activated' && e.pnode === 'pnode-2');
    assert.ok(hostedOn2.length > 0, 'pnode-2 did host VNodes of the types it knows');
    const refused = events.filter((e) => e.type === 'refused');
    assert.equal(refused, [], 'placement never asked a PNode for what it cannot host');
  } finally {
    await nc.close();
    await cluster.stop();
  }
});

test.run();
