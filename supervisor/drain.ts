/**
 * Drain: `dcnr drain <pnode>` asks (request/reply on `Subject.control('drain')`) to
 * move every VNode off a PNode. The supervisor marks it draining (persisted in KV, so a
 * restarted supervisor keeps draining it), reconcile moves its VNodes like a dead
 * PNode's, and the reply goes out once every moved VNode has activated elsewhere.
 * A request that is not `{"pnode": "<known id>"}` gets `ok: false` and the reason.
 */
import type { KV } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { Subject, SupervisorKey, type DrainReply } from '../runtime/protocol.js';
import { parseDrainingList, parseDrainRequest, readRecord, type RejectRecord } from '../runtime/records.js';

interface DrainWaiter {
  pnode: string;
  moved: Set<string>;
  activated: Set<string>;
  reply: (r: DrainReply) => void;
  deadline: number;
}

export interface Drains {
  /** PNodes being drained: placement gives them nothing, reconcile moves what they own. */
  readonly draining: ReadonlySet<string>;
  /** Drain `pnode` on the supervisor's own decision (a risk drain: supervisor/health.ts); nobody waits for a reply. */
  begin(pnode: string, reason: string): void;
  /** A new incarnation of `pnode` is a fresh PNode, or a risk-drained one is well again: no longer draining. */
  forget(pnode: string): void;
  activated(vnode: string): void;
  /** Answer every drain that is complete (or timed out); `wanted` = VNodes still deployed. */
  settle(now: number, wanted: ReadonlySet<string>): void;
  stop(): void;
}

export interface DrainOptions {
  nc: NatsConnection;
  /** Where the draining list is kept (`SupervisorKey.draining`). */
  members: KV;
  reject: RejectRecord;
  knownPNodes(): string[];
  ownedBy(pnode: string): string[];
  log(line: string): void;
  /** How long a drain may take before it is answered with a failure. @default 60000 */
  timeoutMs?: number;
}

export async function handleDrains(o: DrainOptions): Promise<Drains> {
  const stored = await readRecord(o.members, SupervisorKey.draining, parseDrainingList, o.reject);
  const draining = new Set<string>(stored?.value ?? []);
  const waiters: DrainWaiter[] = [];
  const persist = () => void o.members.put(SupervisorKey.draining, JSON.stringify([...draining])).catch((err) => o.log(`could not save the draining list: ${err}`));
  const answer = (r: DrainReply) => JSON.stringify(r);

  const sub: Subscription = o.nc.subscribe(Subject.control('drain'), {
    callback: (_err, msg) => {
      const req = parseDrainRequest(msg.data);
      if (!req.ok) return void msg.respond(answer({ ok: false, pnode: '', moved: [], error: req.error }));
      const { pnode } = req.value;
      const known = o.knownPNodes().sort();
      if (!known.includes(pnode)) {
        return void msg.respond(answer({ ok: false, pnode, moved: [], error: `unknown PNode ${JSON.stringify(pnode)} (known: ${known.join(', ') || 'none'})` }));
      }
      draining.add(pnode);
      persist();
      const moved = new Set(o.ownedBy(pnode));
      o.log(`draining ${pnode}: ${moved.size} VNodes to move`);
      waiters.push({ pnode, moved, activated: new Set(), reply: (r) => msg.respond(answer(r)), deadline: Date.now() + (o.timeoutMs ?? 60_000) });
    },
  });

  return {
    draining,
    begin(pnode, reason) {
      if (draining.has(pnode)) return;
      draining.add(pnode);
      persist();
      o.log(`draining ${pnode} (${reason}): ${o.ownedBy(pnode).length} VNodes to move`);
    },
    forget(pnode) {
      if (draining.delete(pnode)) persist();
    },
    activated(vnode) {
      for (const w of waiters) if (w.moved.has(vnode)) w.activated.add(vnode);
    },
    settle(now, wanted) {
      for (let i = waiters.length - 1; i >= 0; i--) {
        const w = waiters[i];
        const done = [...w.moved].every((v) => w.activated.has(v) || !wanted.has(v));
        if (!done && now <= w.deadline) continue;
        waiters.splice(i, 1);
        w.reply({ ok: done, pnode: w.pnode, moved: [...w.moved], error: done ? undefined : 'timed out waiting for the moved VNodes to activate' });
      }
    },
    stop: () => sub.unsubscribe(),
  };
}
