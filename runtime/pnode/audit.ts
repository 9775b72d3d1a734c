/**
 * The auditor in every PNode (docs/ledger.md, "Spot re-execution"): the supervisor sends
 * it, on `Subject.audit(<pnode>)`, a segment of another PNode's ledger — an anchor and the
 * messages recorded after it — and it runs them again through the VNode type's own step
 * on the stored inputs (runtime/ledger/verify.ts `reexecute`), answering whether every
 * output and parameter digest came out as recorded. A request that is not a segment gets
 * `ok: false` with the reason; nothing in it can crash the PNode (invariant 7).
 */
import { jetstreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { readDeployment } from '../cluster-state.js';
import type { Kernels } from '../kernels/types.js';
import type { AuditReply } from '../ledger/entry.js';
import { loadAnchor, reexecute } from '../ledger/verify.js';
import { resolveModel, type ResolvedModel } from '../model.js';
import { Subject, vnodeId } from '../protocol.js';
import { parseAuditRequest } from '../records.js';

export function serveAudits(o: { nc: NatsConnection; pnode: string; deployments: KV; kernels: Kernels; log: (line: string) => void }): { stop(): void } {
  const models = new Map<string, ResolvedModel>();
  const jsm = jetstreamManager(o.nc);
  /** One audit at a time: it competes with training for the same cores. */
  let queue: Promise<unknown> = Promise.resolve();
  const audit = async (data: Uint8Array): Promise<AuditReply> => {
    const parsed = parseAuditRequest(data);
    if (!parsed.ok) return { ok: false, recomputed: 0, error: parsed.error };
    const req = parsed.value;
    const key = `${req.deployment}/${req.generation}`;
    let model = models.get(key);
    if (!model) {
      const record = await readDeployment(o.deployments, req.deployment);
      if (!record || record.generation !== req.generation) return { ok: false, recomputed: 0, error: `no deployment ${req.deployment} of generation ${req.generation}` };
      model = resolveModel(record.spec, { shapes: record.shapes });
      models.set(key, model);
    }
    const v = model.vnodes[req.vnode];
    if (!v) return { ok: false, recomputed: 0, error: `${req.deployment} has no VNode ${req.vnode}` };
    const j = await jsm;
    const state = await loadAnchor(j, req.deployment, req.anchor);
    if (state === null) return { ok: false, recomputed: 0, error: 'the anchor\'s evidence is gone' };
    if (typeof state === 'string') return { ok: true, recomputed: 0, mismatch: { seq: req.messages[0].seq, kind: req.messages[0].kind, reason: `its anchor: ${state}` } };
    const r = await reexecute({ jsm: j, kernels: o.kernels, model }, v, vnodeId(req.deployment, req.vnode, v.def.type), state, req.messages);
    if (r.missing) return { ok: false, recomputed: r.done, error: 'an input\'s evidence is gone' };
    return { ok: true, recomputed: r.done, ...(r.mismatch ? { mismatch: { seq: r.mismatch.m.seq, kind: r.mismatch.m.kind, reason: r.mismatch.reason } } : {}) };
  };
  const sub: Subscription = o.nc.subscribe(Subject.audit(o.pnode), {
    callback: (_err, msg) => {
      queue = queue.then(async () => {
        const reply = await audit(msg.data).catch((err): AuditReply => ({ ok: false, recomputed: 0, error: `audit failed: ${(err as Error).message}` }));
        if (reply.error) o.log(`audit refused: ${reply.error}`);
        msg.respond(JSON.stringify(reply));
      });
    },
  });
  return { stop: () => sub.unsubscribe() };
}
