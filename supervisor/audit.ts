/**
 * Spot re-execution while training (docs/ledger.md): the leading supervisor reads every
 * ledger entry as it is published, cuts each VNode's messages into segments (one anchor
 * and the ANCHOR_EVERY messages after it), and sends a share `p` of the segments —
 * chosen by a hash of a secret only it knows, so no PNode can tell which of its work will
 * be checked — to another PNode, which runs them again (runtime/pnode/audit.ts).
 *
 * A segment that comes out as recorded adds one `verified` to the reputation of every
 * PNode that computed it. One that does not is confirmed by a second auditor: if it
 * agrees, the PNode that computed the wrong message is quarantined — drained, and never
 * given a VNode again, whatever its heartbeats say — and `failed` is added to its
 * reputation; if the second auditor disagrees, the first one lied and is quarantined
 * instead. Reputation and the quarantine list are kept in KV (a new leader carries on).
 *
 * Only whole segments are audited: the last, partial one of a run is left to `dcnr
 * ledger verify`. A VNode's messages are numbered by the ledger (`entry.from`): a
 * replay after a crash re-publishes entries for numbers already seen, with the same
 * digests when its owner is honest; the first one seen is kept.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { parseLedgerRecord, type Anchor, type AuditReply, type AuditRequest, type LedgerMessage } from '../runtime/ledger/entry.js';
import { ANCHOR_EVERY } from '../runtime/ledger/recorder.js';
import { Subject, SupervisorKey, vnodeId, type ClusterEvent } from '../runtime/protocol.js';
import { parseAuditReply, parseQuarantineList, parseReputations, readRecord, type RejectRecord } from '../runtime/records.js';

export { DEFAULT_AUDIT_SHARE } from '../runtime/ledger/recorder.js';
/** How long an auditor may take over one segment. */
const AUDIT_TIMEOUT_MS = 60_000;

export interface Reputation {
  verified: number;
  failed: number;
}

export interface Audits {
  readonly quarantined: ReadonlySet<string>;
  reputation(pnode: string): Reputation | undefined;
  /** Segments sent to an auditor so far, and those whose answer came. */
  readonly counts: { sent: number; answered: number };
  stop(): void;
}

export interface AuditOptions {
  nc: NatsConnection;
  /** Where the quarantine list and reputations are kept (the members bucket). */
  members: KV;
  /** Reports a record in KV that is not what it must be. */
  reject: RejectRecord;
  /** Share of segments to re-execute, 0..1. */
  share: number;
  /** Live PNodes that may audit (not quarantined: this module leaves those out). */
  alive(): string[];
  /** Drain `pnode` for good. */
  quarantine(pnode: string): void;
  emit(e: ClusterEvent): void;
  log(line: string, level?: 'warn'): void;
}

interface Segment {
  deployment: string;
  generation: number;
  vnode: number;
  type: string;
  n: number;
  anchor?: Anchor;
  /** By message number within the segment: the message and the PNode that computed it. */
  messages: Array<{ m: LedgerMessage; pnode: string } | undefined>;
  filled: number;
}

export async function startAudits(o: AuditOptions): Promise<Audits> {
  // Junk under either key is reported (records.ts) and read as none.
  const quarantined = new Set<string>((await readRecord(o.members, SupervisorKey.quarantined, parseQuarantineList, o.reject).catch(() => null))?.value ?? []);
  const reputations = new Map<string, Reputation>(Object.entries((await readRecord(o.members, SupervisorKey.reputation, parseReputations, o.reject).catch(() => null))?.value ?? {}));
  const secret = randomBytes(32);
  const segments = new Map<string, Segment>();
  /** Per deployment, the newest generation seen: older ones' segments are dropped. */
  const generations = new Map<string, number>();
  const counts = { sent: 0, answered: 0 };
  let saving = Promise.resolve();
  const save = () => {
    saving = saving
      .then(async () => {
        await o.members.put(SupervisorKey.quarantined, JSON.stringify([...quarantined].sort()));
        await o.members.put(SupervisorKey.reputation, JSON.stringify(Object.fromEntries(reputations)));
      })
      .catch((err) => o.log(`could not save reputations: ${(err as Error).message}`, 'warn'));
  };
  const credit = (pnode: string, k: keyof Reputation) => {
    const r = reputations.get(pnode) ?? { verified: 0, failed: 0 };
    r[k]++;
    reputations.set(pnode, r);
  };
  const sampled = (s: Segment) => createHash('sha256').update(secret).update(`${s.deployment}/${s.generation}/${s.vnode}/${s.n}`).digest().readUInt32BE(0) / 0x1_0000_0000 < o.share;

  /** An auditor for a segment: alive, not quarantined, none of `not`; spread by the segment's hash. */
  const pickAuditor = (s: Segment, not: ReadonlySet<string>): string | undefined => {
    const ok = o.alive().filter((p) => !quarantined.has(p) && !not.has(p)).sort();
    if (ok.length === 0) return undefined;
    return ok[createHash('sha256').update(`${s.deployment}/${s.vnode}/${s.n}/${not.size}`).digest().readUInt32BE(0) % ok.length];
  };

  /** One audit at a time per auditor (it competes with that PNode's training for its cores); auditors work in parallel. */
  const lanes = new Map<string, Promise<unknown>>();
  const ask = (auditor: string, s: Segment): Promise<AuditReply> => {
    const req: AuditRequest = { deployment: s.deployment, generation: s.generation, vnode: s.vnode, anchor: s.anchor!, messages: s.messages.map((x) => x!.m) };
    const run = (lanes.get(auditor) ?? Promise.resolve()).then(async () => {
      counts.sent++;
      const reply = await o.nc.request(Subject.audit(auditor), JSON.stringify(req), { timeout: AUDIT_TIMEOUT_MS });
      counts.answered++;
      const r = parseAuditReply(reply.data);
      // An answer that is not one counts as an audit not done.
      return r.ok ? r.value : { ok: false, recomputed: 0, error: `the auditor answered with something else (${r.error})` };
    });
    lanes.set(auditor, run.catch(() => {}));
    return run;
  };

  const settle = (s: Segment, offender: string, auditor: string, seq: number, reason: string) => {
    if (quarantined.has(offender)) return;
    quarantined.add(offender);
    credit(offender, 'failed');
    save();
    o.quarantine(offender);
    o.log(`quarantined ${offender}: ${vnodeId(s.deployment, s.vnode, s.type)} seq ${seq}: ${reason} (found by ${auditor})`, 'warn');
    o.emit({ type: 'quarantined', pnode: offender, vnode: `${s.deployment}.${s.vnode}`, seq, auditor, reason, at: Date.now() });
  };

  const audit = async (s: Segment) => {
    const pnodes = new Set(s.messages.map((x) => x!.pnode));
    const first = pickAuditor(s, pnodes);
    if (!first) return; // nobody else to ask (a one-PNode cluster): `dcnr ledger verify` checks it
    const r1 = await ask(first, s);
    if (!r1.ok) return o.log(`audit of ${s.deployment}.${s.vnode} segment ${s.n} by ${first} not done: ${r1.error}`);
    const at = Date.now();
    if (!r1.mismatch) {
      for (const p of pnodes) credit(p, 'verified');
      save();
      o.emit({ type: 'audited', vnode: `${s.deployment}.${s.vnode}`, generation: s.generation, from: s.n * ANCHOR_EVERY, messages: s.messages.length, pnodes: [...pnodes].sort(), auditor: first, ok: true, at });
      return;
    }
    const culprit = s.messages.find((x) => x!.m.seq === r1.mismatch!.seq && x!.m.kind === r1.mismatch!.kind)?.pnode ?? s.messages[0]!.pnode;
    o.emit({ type: 'audited', vnode: `${s.deployment}.${s.vnode}`, generation: s.generation, from: s.n * ANCHOR_EVERY, messages: s.messages.length, pnodes: [...pnodes].sort(), auditor: first, ok: false, at });
    // A second opinion, from neither the accused nor the accuser.
    const second = pickAuditor(s, new Set([...pnodes, first]));
    const r2 = second ? await ask(second, s).catch((err): AuditReply => ({ ok: false, recomputed: 0, error: String(err) })) : undefined;
    if (second && r2?.ok && !r2.mismatch) return settle(s, first, second, r1.mismatch.seq, `it reported a mismatch (${r1.mismatch.reason}) that ${second} does not find`);
    settle(s, culprit, first, r1.mismatch.seq, r1.mismatch.reason);
  };

  const enqueue = (s: Segment) => void audit(s).catch((err) => o.log(`audit of ${s.deployment}.${s.vnode} segment ${s.n} failed: ${(err as Error).message}`, 'warn'));

  const sub: Subscription = o.nc.subscribe(Subject.ledgerEvery, {
    callback: (_err, msg) => {
      const parsed = parseLedgerRecord(msg.data);
      if (!parsed.ok) return; // junk on the ledger: `dcnr ledger verify` counts it
      const e = parsed.record.entry;
      const newest = generations.get(e.deployment) ?? -1;
      if (e.generation < newest) return;
      if (e.generation > newest) {
        generations.set(e.deployment, e.generation);
        for (const [k, s] of segments) if (s.deployment === e.deployment) segments.delete(k);
      }
      const anchors = new Map(e.anchors.map((a) => [a.at, a]));
      e.messages.forEach((m, k) => {
        const n = e.from + k;
        const segN = Math.floor(n / ANCHOR_EVERY);
        const key = `${e.deployment}/${e.generation}/${e.vnode}/${segN}`;
        let s = segments.get(key);
        if (!s) segments.set(key, (s = { deployment: e.deployment, generation: e.generation, vnode: e.vnode, type: e.type, n: segN, messages: new Array(ANCHOR_EVERY), filled: 0 }));
        if (n % ANCHOR_EVERY === 0 && anchors.has(n)) s.anchor ??= anchors.get(n);
        const i = n % ANCHOR_EVERY;
        if (s.messages[i]) return;
        s.messages[i] = { m, pnode: e.pnode };
        if (++s.filled < ANCHOR_EVERY || !s.anchor) return;
        segments.delete(key);
        if (sampled(s)) enqueue(s);
      });
    },
  });
  o.log(`spot re-execution: ${Math.round(o.share * 1000) / 10}% of each VNode's segments of ${ANCHOR_EVERY} messages; ${quarantined.size} PNodes quarantined`);
  return {
    quarantined,
    reputation: (p) => reputations.get(p),
    counts,
    stop: () => sub.unsubscribe(),
  };
}
