/**
 * `dcnr ledger verify` (docs/ledger.md): check a deployment's ledger against its
 * committed state, and re-execute a sample of the recorded updates.
 *
 * Per VNode: the chain that counts is the one its committed state names (`StateMeta.ledger`),
 * walked back through `prev` to the first entry. Every entry on it must hash as it says,
 * be signed by the owner of its epoch (auth on), and number its messages on from the
 * previous one; the last update's parameter digest must be that of the stored
 * parameters. Entries on no committed chain are orphans (an owner fenced before its
 * checkpoint committed: those updates did not happen) and are only counted.
 *
 * Re-execution goes by segments: the messages from one anchor (a whole state the VNode
 * kept every ANCHOR_EVERY messages) to the next, run again through the VNode type's own
 * step (runtime/vnode-step.ts) on the stored inputs, each output and parameter digest
 * compared with the record. A sample P picks each segment with probability P (by a hash
 * of the chain's head and its number: unpredictable before the run, the same on every
 * verification); a segment with a damaged entry, input or anchor is always re-executed,
 * so what was altered is named by its VNode and seq.
 */
import { createHash } from 'node:crypto';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { Kernels } from '../kernels/types.js';
import type { ResolvedModel } from '../model.js';
import { Stream, vnodeId } from '../protocol.js';
import type { StateStore } from '../state-store.js';
import { applyStep, type StepState } from '../vnode-step.js';
import { checkSeal, outputsDigest, paramsDigest, parseLedgerRecord, type LedgerEntry, type LedgerMessage, type LedgerRecord } from './entry.js';
import { readEvidence } from './evidence.js';
import { ANCHOR_EVERY } from './recorder.js';

export interface Mismatch {
  vnode: string;
  seq: number;
  pnode: string;
  kind?: string;
  reason: string;
}

export interface Contribution {
  /** Updates applied (messages that changed parameters or computed a loss). */
  updates: number;
  messages: number;
  computeMs: number;
  /** Input bytes it processed. */
  bytes: number;
}

export interface LedgerReport {
  deployment: string;
  generation: number;
  /** Messages recorded on the committed chains (one per applied message). */
  entries: number;
  /** Of those, updates: backwards that changed a VNode and losses computed (a run applies one per VNode per step). */
  updates: number;
  /** Ledger records (one per checkpoint) on those chains. */
  records: number;
  chainOk: boolean;
  signaturesOk: boolean;
  /** The entries are signed (auth on). Unsigned entries are checked by their hash chain only. */
  signed: boolean;
  /** Messages re-executed. */
  recomputed: number;
  mismatches: Mismatch[];
  contributions: Record<string, Contribution>;
  /** Records on no committed chain (fenced owners' checkpoints that never committed). */
  orphans: number;
  /** Messages that could not be re-executed (evidence dropped by the stream's limits). */
  unverifiable: number;
  /** The kernel backend of the re-execution, and those the entries were computed with. */
  kernels: { verifier: string; recorded: string[] };
  verified: boolean;
}

export interface VerifyOptions {
  jsm: JetStreamManager;
  store: StateStore;
  model: ResolvedModel;
  generation: number;
  kernels: Kernels;
  /** Share of segments to re-execute, 0..1. @default 0.05 */
  sample?: number;
  /** With auth on: the key of the owner of `epoch` (its entries must be signed by it). */
  ownerKey?: (deployment: string, generation: number, index: number, epoch: number) => Promise<string | null>;
  progress?: (line: string) => void;
}

/** Every ledger record of a deployment, in stream order, and the ones that are not records at all. */
async function readRecords(jsm: JetStreamManager, deployment: string): Promise<{ records: LedgerRecord[]; junk: number }> {
  const info = await jsm.streams.info(Stream.ledger(deployment)).catch(() => null);
  if (!info) return { records: [], junk: 0 };
  const records: LedgerRecord[] = [];
  let junk = 0;
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(Stream.ledger(deployment), { seq }).catch(() => null);
    if (!m) continue; // deleted
    const r = parseLedgerRecord(m.data);
    if (r.ok) records.push(r.record);
    else junk++;
  }
  return { records, junk };
}

/** Is segment `n` of the chain ending in `head` in the sample? */
function sampled(head: string, n: number, p: number): boolean {
  if (p >= 1) return true;
  if (p <= 0) return false;
  const h = createHash('sha256').update(`${head}/${n}`).digest();
  return h.readUInt32BE(0) / 0x1_0000_0000 < p;
}

export async function verifyLedger(o: VerifyOptions): Promise<LedgerReport> {
  const deployment = o.model.spec.name;
  const p = o.sample ?? 0.05;
  const { records, junk } = await readRecords(o.jsm, deployment);
  const report: LedgerReport = {
    deployment,
    generation: o.generation,
    entries: 0,
    updates: 0,
    records: 0,
    chainOk: true,
    signaturesOk: true,
    signed: false,
    recomputed: 0,
    mismatches: [],
    contributions: {},
    orphans: 0,
    unverifiable: 0,
    kernels: { verifier: o.kernels.mode, recorded: [] },
    verified: false,
  };
  const recordedKernels = new Set<string>();
  const mine = records.filter((r) => r.entry.deployment === deployment && r.entry.generation === o.generation);
  report.orphans += records.length - mine.length + junk;

  for (const v of o.model.vnodes) {
    const id = vnodeId(deployment, v.index, v.def.type);
    const fail = (seq: number, pnode: string, reason: string, kind?: string) => report.mismatches.push({ vnode: id, seq, pnode, ...(kind ? { kind } : {}), reason });
    const committed = await o.store.read(deployment, v.index).catch((err) => String(err));
    if (typeof committed === 'string' || !committed || committed.meta.generation !== o.generation || !committed.meta.ledger) {
      report.chainOk = false;
      fail(0, '?', typeof committed === 'string' ? committed : `no committed state with a ledger for generation ${o.generation}`);
      continue;
    }
    const ledgerHead = committed.meta.ledger;
    const ofVNode = mine.filter((r) => r.entry.vnode === v.index);
    const byHash = new Map<string, LedgerRecord>();
    for (const r of ofVNode) if (!byHash.has(r.hash) || checkSeal(r).hashOk) byHash.set(r.hash, r);

    // The committed chain, newest first, walked back to its first entry.
    const chain: LedgerRecord[] = [];
    let at = ledgerHead.head;
    let expectEnd = ledgerHead.count;
    while (at !== null) {
      const r = byHash.get(at);
      if (!r) {
        report.chainOk = false;
        // An entry that claims the missing place, with another hash: altered and re-hashed.
        const claim = ofVNode.find((x) => x.entry.from + x.entry.messages.length === expectEnd && !chain.includes(x));
        fail(claim?.entry.messages[0]?.seq ?? 0, claim?.entry.pnode ?? '?', `the chain breaks: entry ${at.slice(0, 12)}… (messages before #${expectEnd}) is not in the ledger${claim ? `; an entry with hash ${claim.hash.slice(0, 12)}… claims its place` : ''}`);
        break;
      }
      if (r.entry.from + r.entry.messages.length !== expectEnd) {
        report.chainOk = false;
        fail(r.entry.messages[0]?.seq ?? 0, r.entry.pnode, `entry ${r.hash.slice(0, 12)}… covers messages #${r.entry.from}–#${r.entry.from + r.entry.messages.length - 1}, the next one starts at #${expectEnd}`);
      }
      chain.push(r);
      expectEnd = r.entry.from;
      at = r.entry.prev;
    }
    if (at === null && expectEnd !== 0) {
      report.chainOk = false;
      fail(0, '?', `the chain starts at message #${expectEnd}, not #0`);
    }
    chain.reverse();
    const onChain = new Set(chain.map((r) => r.hash));
    report.orphans += ofVNode.filter((r) => !onChain.has(r.hash)).length;
    report.records += chain.length;

    // Seals, signatures and accounting; entries that fail are re-executed whatever the sample.
    const suspect = new Set<LedgerRecord>();
    for (const r of chain) {
      const e = r.entry;
      recordedKernels.add(e.kernels);
      const seal = checkSeal(r);
      if (seal.signed) report.signed = true;
      if (!seal.hashOk) {
        report.chainOk = false;
        suspect.add(r);
        fail(e.messages[0]?.seq ?? 0, e.pnode, `entry ${r.hash.slice(0, 12)}… does not hash as it says: altered`);
      }
      if (o.ownerKey) {
        const owner = await o.ownerKey(deployment, o.generation, v.index, e.epoch).catch(() => null);
        if (!seal.signatureOk || r.signer !== owner) {
          report.signaturesOk = false;
          suspect.add(r);
          fail(e.messages[0]?.seq ?? 0, e.pnode, !seal.signed ? 'entry unsigned' : !seal.signatureOk ? 'bad signature' : `signed by ${r.signer?.slice(0, 12)}…, not by the owner of epoch ${e.epoch}`);
        }
      }
      const c = (report.contributions[e.pnode] ??= { updates: 0, messages: 0, computeMs: 0, bytes: 0 });
      for (const m of e.messages) {
        c.messages++;
        if (m.step !== undefined || m.kind === 'target') {
          c.updates++;
          report.updates++;
        }
        c.computeMs += m.computeMs;
        c.bytes += (m.input?.ref.length ?? 0) * 4;
      }
    }
    const messages = chain.flatMap((r) => r.entry.messages.map((m, k) => ({ m, n: r.entry.from + k, r })));
    report.entries += messages.length;

    // The stored parameters are those the last update (or federated sync) says.
    const lastUpdate = [...messages].reverse().find((x) => x.m.params !== undefined);
    if (lastUpdate) {
      const stored = await o.store.load(committed.meta).catch((err) => String(err));
      if (typeof stored === 'string') fail(lastUpdate.m.seq, lastUpdate.r.entry.pnode, `the stored state cannot be read: ${stored}`, lastUpdate.m.kind);
      else if (paramsDigest(stored.tensors, v.def.parameters) !== lastUpdate.m.params) {
        const what = lastUpdate.m.step !== undefined ? `its last update (step ${lastUpdate.m.step})` : `its last sync (round ${lastUpdate.m.seq})`;
        fail(lastUpdate.m.seq, lastUpdate.r.entry.pnode, `the stored parameters are not those ${what} recorded: the state was altered`, lastUpdate.m.kind);
      }
    }

    // Re-execution, segment by segment.
    const anchors = new Map(chain.flatMap((r) => r.entry.anchors.map((a) => [a.at, { a, r }] as const)));
    const segments = Math.ceil(messages.length / ANCHOR_EVERY);
    for (let s = 0; s < segments; s++) {
      const part = messages.slice(s * ANCHOR_EVERY, (s + 1) * ANCHOR_EVERY);
      if (!sampled(ledgerHead.head ?? '', s, p) && !part.some((x) => suspect.has(x.r))) continue;
      const found = anchors.get(s * ANCHOR_EVERY);
      if (!found) {
        report.chainOk = false;
        fail(part[0].m.seq, part[0].r.entry.pnode, `no anchor before message #${s * ANCHOR_EVERY}`);
        continue;
      }
      const state = await loadAnchor(o.jsm, deployment, found.a);
      if (typeof state === 'string' || state === null) {
        if (state === null) report.unverifiable += part.length;
        else fail(part[0].m.seq, found.r.entry.pnode, `the anchor before message #${found.a.at}: ${state}`, part[0].m.kind);
        continue;
      }
      const bad = await reexecute(o, v, id, state, part.map((x) => x.m));
      report.recomputed += bad.done;
      if (bad.missing) report.unverifiable += part.length - bad.done;
      if (bad.mismatch) fail(bad.mismatch.m.seq, part[bad.done - 1]?.r.entry.pnode ?? part[0].r.entry.pnode, bad.mismatch.reason, bad.mismatch.m.kind);
    }
    o.progress?.(`${id}: ${messages.length} messages in ${chain.length} entries, ${report.mismatches.filter((x) => x.vnode === id).length} problems`);
  }
  report.kernels.recorded = [...recordedKernels].sort();
  for (const c of Object.values(report.contributions)) c.computeMs = Math.round(c.computeMs);
  report.verified = report.chainOk && report.signaturesOk && report.mismatches.length === 0 && report.entries > 0;
  return report;
}

/** An anchor's state from its evidence: null when some of it is gone, a string when it was altered. */
export async function loadAnchor(jsm: JetStreamManager, deployment: string, a: LedgerEntry['anchors'][number]): Promise<StepState | string | null> {
  const tensors: Record<string, Float32Array> = {};
  for (const [name, ref] of a.tensors) {
    const data = await readEvidence(jsm, deployment, ref);
    if (typeof data === 'string' || data === null) return data ?? null;
    tensors[name] = data;
  }
  const stash = new Map<number, Float32Array[]>();
  for (const [seq, refs] of a.stash) {
    const arrays: Float32Array[] = [];
    for (const ref of refs) {
      const data = await readEvidence(jsm, deployment, ref);
      if (typeof data === 'string' || data === null) return data ?? null;
      arrays.push(data);
    }
    stash.set(seq, arrays);
  }
  return { tensors, stash, applied: a.applied };
}

/** Run `messages` again from `state`; stops at the first that does not give what it recorded. */
export async function reexecute(
  o: { jsm: JetStreamManager; kernels: Kernels; model: ResolvedModel },
  v: ResolvedModel['vnodes'][number],
  id: string,
  start: StepState,
  messages: LedgerMessage[],
): Promise<{ done: number; missing?: boolean; mismatch?: { m: LedgerMessage; reason: string } }> {
  let state = start;
  let done = 0;
  for (const m of messages) {
    let tensor;
    if (m.input) {
      const data = await readEvidence(o.jsm, o.model.spec.name, m.input.ref);
      if (data === null) return { done, missing: true };
      if (typeof data === 'string') return { done: done + 1, mismatch: { m, reason: `its input: ${data}` } };
      if (data.length !== m.input.shape.reduce((x, y) => x * y, 1)) return { done: done + 1, mismatch: { m, reason: `its input has ${data.length} values, shape [${m.input.shape}]` } };
      tensor = { shape: m.input.shape, data };
    }
    done++;
    let r;
    try {
      r = await applyStep(v, o.kernels, state, { kind: m.kind, port: m.port, seq: m.seq, tensor }, id);
    } catch (err) {
      return { done, mismatch: { m, reason: `re-execution failed: ${(err as Error).message}` } };
    }
    if (outputsDigest(r.outputs, r.loss?.value) !== m.outputs) return { done, mismatch: { m, reason: 'its outputs differ from the recorded ones' } };
    if (r.update !== m.step) return { done, mismatch: { m, reason: `it is update ${r.update ?? 'none'}, recorded as ${m.step ?? 'none'}` } };
    if (r.update !== undefined || m.kind === 'sync') {
      const what = r.update !== undefined ? `update ${r.update}` : `the sync of round ${m.seq}`;
      if (paramsDigest(r.tensors, v.def.parameters) !== m.params) return { done, mismatch: { m, reason: `the parameters after ${what} differ from the recorded ones` } };
    }
    state = { tensors: r.tensors, stash: r.stash, applied: r.update ?? state.applied };
  }
  return { done };
}
