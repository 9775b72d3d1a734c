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
import { z } from 'zod';
import { readDeployment } from '../cluster-state.js';
import type { Kernels } from '../kernels/types.js';
import { anchorSchema, messageSchema, type Anchor, type LedgerMessage } from '../ledger/entry.js';
import { loadAnchor, reexecute } from '../ledger/verify.js';
import { resolveModel, type ResolvedModel } from '../model.js';
import { NAME_PATTERN, Subject, vnodeId } from '../protocol.js';

export interface AuditRequest {
  deployment: string;
  generation: number;
  vnode: number;
  anchor: Anchor;
  messages: LedgerMessage[];
}

export interface AuditReply {
  ok: boolean;
  /** Messages run again. */
  recomputed: number;
  /** The first message that did not come out as recorded. */
  mismatch?: { seq: number; kind: string; reason: string };
  /** The request could not be audited (bad request, evidence gone, no such deployment). */
  error?: string;
}

const requestSchema = z
  .object({
    deployment: z.string().regex(NAME_PATTERN),
    generation: z.number().int().min(0),
    vnode: z.number().int().min(0),
    anchor: anchorSchema,
    messages: z.array(messageSchema).min(1).max(10_000),
  })
  .strict();

export function serveAudits(o: { nc: NatsConnection; pnode: string; deployments: KV; kernels: Kernels; log: (line: string) => void }): { stop(): void } {
  const models = new Map<string, ResolvedModel>();
  const jsm = jetstreamManager(o.nc);
  /** One audit at a time: it competes with training for the same cores. */
  let queue: Promise<unknown> = Promise.resolve();
  const audit = async (data: Uint8Array): Promise<AuditReply> => {
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(data));
    } catch {
      return { ok: false, recomputed: 0, error: 'not JSON' };
    }
    const parsed = requestSchema.safeParse(json);
    if (!parsed.success) return { ok: false, recomputed: 0, error: `not an audit request: ${parsed.error.issues[0].path.join('.')}: ${parsed.error.issues[0].message}` };
    const req = parsed.data as AuditRequest;
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
