/**
 * The PNode's auditor (runtime/pnode/audit.ts) on a real run's ledger: a segment as
 * recorded comes out as recorded; one whose recorded digest of a message's outputs was
 * changed is reported at exactly that message; anything that is not an audit request is
 * refused with the reason and the auditor goes on answering (invariant 7).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { jetstreamManager } from '@nats-io/jetstream';
import '../actors/index.js';
import { cleanup, setup } from './helpers/nats.js';
import { openBuckets } from '../runtime/cluster-state.js';
import { createKernels } from '../runtime/kernels/index.js';
import { parseLedgerRecord, type LedgerRecord } from '../runtime/ledger/entry.js';
import { ANCHOR_EVERY } from '../runtime/ledger/recorder.js';
import { loadModelSpec, resolveModel, withOverrides } from '../runtime/model.js';
import { Stream, Subject } from '../runtime/protocol.js';
import { train } from '../trainer/train.js';
import { serveAudits } from '../runtime/pnode/audit.js';
import type { AuditReply, AuditRequest } from '../runtime/ledger/entry.js';

test('an auditor re-executes a recorded segment, names the one altered message, and refuses junk', async () => {
  const { ns, nc } = await setup();
  const kernels = await createKernels();
  const auditor = serveAudits({ nc, pnode: 'auditor-1', deployments: (await openBuckets(nc)).deployments, kernels, log: () => {} });
  try {
    const model = resolveModel(withOverrides(loadModelSpec('mnist-mlp'), { ledger: true }));
    const result = await train({ nc, model, steps: 40, batch: 8, seed: 4, kernels, hostLocally: true });
    assert.is(result.steps, 40);

    // VNode 2's first segment, from its ledger entries.
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(Stream.ledger('mnist-mlp'));
    const records: LedgerRecord[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const r = parseLedgerRecord((await jsm.streams.getMessage(Stream.ledger('mnist-mlp'), { seq }))!.data);
      if (r.ok && r.record.entry.vnode === 2) records.push(r.record);
    }
    const messages = records.flatMap((r) => r.entry.messages).slice(0, ANCHOR_EVERY);
    assert.is(messages.length, ANCHOR_EVERY);
    const anchor = records[0].entry.anchors[0];
    assert.is(anchor.at, 0);
    const generation = records[0].entry.generation;
    const ask = async (body: unknown): Promise<AuditReply> => JSON.parse(new TextDecoder().decode((await nc.request(Subject.audit('auditor-1'), typeof body === 'string' ? body : JSON.stringify(body), { timeout: 30_000 })).data));
    const request: AuditRequest = { deployment: 'mnist-mlp', generation, vnode: 2, anchor, messages };

    assert.equal(await ask(request), { ok: true, recomputed: ANCHOR_EVERY });

    const k = messages.findIndex((m, i) => i > 10 && m.kind === 'bwd');
    const altered = messages.map((m, i) => (i === k ? { ...m, outputs: messages[0].outputs } : m));
    const caught = await ask({ ...request, messages: altered });
    assert.is(caught.ok, true);
    assert.is(caught.recomputed, k + 1, 'stops at the altered message');
    assert.equal(caught.mismatch && { seq: caught.mismatch.seq, kind: caught.mismatch.kind }, { seq: messages[k].seq, kind: 'bwd' });
    assert.match(caught.mismatch!.reason, /outputs differ/);

    for (const [junk, why] of [
      ['{not json', /not JSON/],
      [{ ...request, vnode: -1 }, /not an audit request: vnode/],
      [{ ...request, messages: [] }, /not an audit request: messages/],
      [{ ...request, generation: generation + 7 }, /no deployment mnist-mlp of generation/],
      [{ ...request, vnode: 99 }, /has no VNode 99/],
      [{ ...request, extra: 1 }, /not an audit request/],
    ] as const) {
      const r = await ask(junk);
      assert.is(r.ok, false, JSON.stringify(junk).slice(0, 80));
      assert.match(r.error ?? '', why);
    }
    assert.equal(await ask(request), { ok: true, recomputed: ANCHOR_EVERY }, 'still answering');
  } finally {
    auditor.stop();
    await cleanup(ns, nc);
  }
});

test.run();
