/**
 * `dcnr ledger verify` and `show`, as a user runs them, on a run trained with the ledger
 * on (auth on, as by default): the untouched ledger verifies with every update
 * re-executed, and each kind of tampering — a ledger entry, an input, an anchor state, the
 * stored state — is found and named by its VNode and seq. Each tampering is done on its
 * own copy of the finished run's store, through the store's own nats-server.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager, jetstream } from '@nats-io/jetstream';
import '../actors/index.js';
import { openDeployment } from '../cluster/open-deployment.js';
import { parseLedgerRecord, type LedgerRecord } from '../runtime/ledger/entry.js';
import { Stream, Subject, stateMetaKey } from '../runtime/protocol.js';
import { openBuckets } from '../runtime/cluster-state.js';
import { dcnr } from './helpers/dcnr.js';
import { tempDir } from './helpers/nats.js';

const dir = tempDir('dcnr-ledger-');
test.after(() => rmSync(dir, { recursive: true, force: true }));
const trained = join(dir, 'trained');
const DEP = 'mnist-mlp';
let steps = 0;

/** A copy of the trained store, tampered with by `alter` through its own server. */
async function tampered(name: string, alter: (o: Awaited<ReturnType<typeof openDeployment>>) => Promise<void>): Promise<string> {
  const copy = join(dir, name);
  cpSync(trained, copy, { recursive: true });
  const opened = await openDeployment({ deployment: DEP, store: copy, client: 'ledger-test' });
  try {
    await alter(opened);
  } finally {
    await opened.close();
  }
  return copy;
}

async function records(opened: Awaited<ReturnType<typeof openDeployment>>): Promise<Array<{ seq: number; record: LedgerRecord }>> {
  const jsm = await jetstreamManager(opened.nc);
  const info = await jsm.streams.info(Stream.ledger(DEP));
  const out = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(Stream.ledger(DEP), { seq });
    const r = parseLedgerRecord(m!.data);
    if (r.ok) out.push({ seq, record: r.record });
  }
  return out;
}

const verify = (store: string) => dcnr(['ledger', 'verify', '--deployment', DEP, '--store', store, '--sample', '1', '--json']);

test('a run trained with --ledger verifies: every applied message recorded once, all re-executed, no mismatch', async () => {
  const run = await dcnr(['train', '--model', DEP, '--pnodes', '0', '--steps', '80', '--batch', '32', '--seed', '5', '--ledger', '--store', trained, '--json']);
  assert.is(run.code, 0, run.stderr.slice(-2000));
  steps = run.json!.steps as number;
  const v = await verify(trained);
  assert.is(v.code, 0, v.stdout.slice(-3000) + v.stderr.slice(-2000));
  const j = v.json!;
  assert.equal(Object.keys(j).sort(), ['chainOk', 'contributions', 'deployment', 'entries', 'generation', 'kernels', 'mismatches', 'orphans', 'recomputed', 'records', 'signaturesOk', 'signed', 'unverifiable', 'updates', 'verified'].sort());
  assert.is(j.verified, true);
  assert.is(j.chainOk, true);
  assert.is(j.signed, true, 'auth is on: entries are signed');
  assert.is(j.signaturesOk, true);
  // Six VNodes, each applies a forward and a backward (or target) per step, and one `end`.
  assert.is(j.entries, 6 * (2 * steps + 1));
  assert.is(j.recomputed, j.entries);
  assert.equal(j.mismatches, []);
  const c = j.contributions as Record<string, { updates: number; messages: number; computeMs: number; bytes: number }>;
  assert.equal(Object.keys(c), ['local']);
  assert.is(c.local.messages, j.entries);
  // Three dense layers and two activations update per step, the loss computes one.
  assert.is(c.local.updates, 6 * steps);
  assert.is(j.updates, 6 * steps);
  assert.ok(c.local.bytes > 0 && c.local.computeMs > 0);

  const show = await dcnr(['ledger', 'show', '--deployment', DEP, '--store', trained, '--json']);
  assert.is(show.code, 0, show.stderr.slice(-2000));
  assert.equal(show.json!.contributions, j.contributions);
  // The default sample re-executes only some: fewer than all, but the chain is checked whole.
  const sampled = await dcnr(['ledger', 'verify', '--deployment', DEP, '--store', trained, '--json']);
  assert.is(sampled.json!.verified, true);
  assert.ok((sampled.json!.recomputed as number) < (j.entries as number), `${sampled.json!.recomputed} re-executed`);
});

test('an altered ledger entry is found, at the exact VNode and seq', async () => {
  let at = { vnode: '', seq: -1 };
  const store = await tampered('entry', async (o) => {
    const jsm = await jetstreamManager(o.nc);
    // VNode 2 (the second dense layer): change the recorded outputs of one backward in its first entry.
    const { seq, record } = (await records(o)).find((r) => r.record.entry.vnode === 2)!;
    const k = record.entry.messages.findIndex((m) => m.kind === 'bwd');
    const victim = record.entry.messages[k];
    at = { vnode: 'mnist-mlp.2.layer.dense', seq: victim.seq };
    const text = JSON.stringify({ ...record.entry, messages: record.entry.messages.map((m, i) => (i === k ? { ...m, outputs: record.entry.messages[0].outputs } : m)) });
    await jsm.streams.deleteMessage(Stream.ledger(DEP), seq);
    await jetstream(o.nc).publish(Subject.ledger(DEP, 2), `${JSON.stringify({ hash: record.hash, signer: record.signer, signature: record.signature })}\n${text}`);
  });
  const v = await verify(store);
  assert.is(v.code, 1);
  const j = v.json!;
  assert.is(j.verified, false);
  assert.is(j.chainOk, false);
  const found = (j.mismatches as Array<{ vnode: string; seq: number; reason: string }>).filter((m) => m.vnode === at.vnode);
  assert.ok(found.some((m) => /does not hash/.test(m.reason)), JSON.stringify(found));
  assert.ok(found.some((m) => m.seq === at.seq && /outputs differ/.test(m.reason)), `want seq ${at.seq}: ${JSON.stringify(found)}`);
});

test('an altered input is found, at the exact VNode and seq', async () => {
  let at = { vnode: '', seq: -1 };
  const store = await tampered('input', async (o) => {
    // The input of VNode 1 (relu) at its 10th message: its evidence overwritten with other bytes.
    const r = (await records(o)).find((x) => x.record.entry.vnode === 1)!;
    const m = r.record.entry.messages[10];
    at = { vnode: 'mnist-mlp.1.activation.relu', seq: m.seq };
    const bytes = new Uint8Array(m.input!.ref.length * 4);
    bytes[7] = 0x3f;
    await jetstream(o.nc).publish(Subject.evidence(DEP, m.input!.ref.sha, 0), bytes);
  });
  const j = (await verify(store)).json!;
  assert.is(j.verified, false);
  const found = (j.mismatches as Array<{ vnode: string; seq: number; reason: string }>).filter((m) => m.vnode === at.vnode);
  assert.ok(found.some((m) => m.seq === at.seq && /input.*altered/.test(m.reason)), `want seq ${at.seq}: ${JSON.stringify(j.mismatches)}`);
});

test('an altered anchor state is found, at the VNode and the first seq it starts', async () => {
  let at = { vnode: '', seq: -1 };
  const store = await tampered('anchor', async (o) => {
    // VNode 4's first anchor (its initial state): one weight changed.
    const r = (await records(o)).find((x) => x.record.entry.vnode === 4)!;
    const [, ref] = r.record.entry.anchors[0].tensors.find(([name]) => name === 'W')!;
    at = { vnode: 'mnist-mlp.4.layer.dense', seq: r.record.entry.messages[0].seq };
    const jsm = await jetstreamManager(o.nc);
    const m = await jsm.streams.getMessage(Stream.evidence(DEP), { last_by_subj: Subject.evidence(DEP, ref.sha, 0) });
    const bytes = new Uint8Array(m!.data);
    bytes[0] ^= 1;
    await jetstream(o.nc).publish(Subject.evidence(DEP, ref.sha, 0), bytes);
  });
  const j = (await verify(store)).json!;
  assert.is(j.verified, false);
  assert.ok(
    (j.mismatches as Array<{ vnode: string; seq: number; reason: string }>).some((m) => m.vnode === at.vnode && m.seq === at.seq && /anchor.*altered/.test(m.reason)),
    `want ${at.vnode} seq ${at.seq}: ${JSON.stringify(j.mismatches)}`,
  );
});

test('an altered stored state is found, at the VNode and the seq of its last update', async () => {
  let at = { vnode: '', seq: -1 };
  const store = await tampered('state', async (o) => {
    // VNode 0's committed weights: one value changed in place (its meta is left as it was).
    const { state } = await openBuckets(o.nc);
    const meta = JSON.parse(new TextDecoder().decode((await state.get(stateMetaKey(DEP, 0)))!.value));
    const ref = meta.tensors.W;
    const key = ref.chunks ? `${ref.key}.c0` : ref.key;
    const bytes = new Uint8Array((await state.get(key))!.value);
    bytes[100] ^= 0x10;
    await state.put(key, bytes);
    const last = (await records(o)).filter((x) => x.record.entry.vnode === 0).at(-1)!.record.entry.messages.filter((m) => m.step !== undefined).at(-1)!;
    at = { vnode: 'mnist-mlp.0.layer.dense', seq: last.seq };
  });
  const j = (await verify(store)).json!;
  assert.is(j.verified, false);
  assert.ok(
    (j.mismatches as Array<{ vnode: string; seq: number; reason: string }>).some((m) => m.vnode === at.vnode && m.seq === at.seq && /stored (state|parameters)/.test(m.reason)),
    `want ${at.vnode} seq ${at.seq}: ${JSON.stringify(j.mismatches)}`,
  );
});

test('verify refuses a deployment without a ledger, and a bad --sample, with a one-line reason', async () => {
  const bad = await dcnr(['ledger', 'verify', '--deployment', DEP, '--store', trained, '--sample', '2', '--json']);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /--sample must be a share between 0 and 1/);
  const plain = join(dir, 'plain');
  const run = await dcnr(['train', '--model', DEP, '--pnodes', '0', '--steps', '5', '--batch', '16', '--store', plain, '--json']);
  assert.is(run.code, 0, run.stderr.slice(-1000));
  const none = await dcnr(['ledger', 'verify', '--deployment', DEP, '--store', plain, '--json']);
  assert.is(none.code, 2);
  assert.match(none.stderr, /keeps no ledger/);
});

test.run();
