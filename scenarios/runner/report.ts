/**
 * A scenario's report: the contract JSON (DESIGN.md, `dcnr scenario`), a table a person
 * reads, and an SVG loss curve with the fault moments marked.
 */
import type { InjectedFault } from '../faults/types.js';
import type { ServingReport } from './serve-load.js';

export interface LedgerSummary {
  verified: boolean;
  entries: number;
  updates: number;
  recomputed: number;
  chainOk: boolean;
  signaturesOk: boolean;
  orphans: number;
  /** Messages whose evidence was gone (not re-executed). */
  unverifiable: number;
  mismatches: Array<{ vnode: string; seq: number; pnode: string; reason: string }>;
  /** Per PNode: updates applied, compute ms. */
  contributions: Record<string, { updates: number; computeMs: number }>;
  error?: string;
}

export interface ScenarioReport {
  scenario: string;
  description: string;
  passed: boolean;
  /** Why it failed, in one sentence (empty when passed). */
  reason: string;
  seed: number;
  /** The model trained (the scenario's, or `--model`'s). */
  model: string;
  batch: number;
  steps: number;
  pnodes: number;
  checks: Array<{ name: string; passed: boolean; detail: string }>;
  faults: Array<Omit<InjectedFault, 'expectDead' | 'attacks'>>;
  /** One entry per PNode declared dead while faults ran. */
  /** Per dead PNode: detection, resumption (replay included), VNodes moved, messages they replayed from their checkpoints. */
  recovery: Array<{ pnode: string; detectMs: number; resumeMs: number; vnodes: number; replayed: number }>;
  updates: { expected: number; applied: number; lost: number; duplicated: number };
  fencedWrites: number;
  rejectedMessages: number;
  /** Attacks the faults tried (hostile-client, rogue-pnode) and how many were refused. */
  /** byzantine-pnode: the liar caught (at which training step), quarantined, and the run rolled back past its work. */
  byzantine?: { detectedAtStep: number | null; stepsToDetect: number | null; quarantined: boolean; rolledBack: boolean; ownedVNodes: number; segmentSteps: number };
  /** Times the faulted run was started again from its first step (trainer/train.ts): a quarantine, or a nats-server restart on an unreplicated store. */
  rollbacks?: Array<{ atStep: number; cause: 'quarantine' | 'nats-restart'; detail: string }>;
  attacks: { attempted: number; refused: number; list: Array<{ name: string; refused: boolean; detail: string }> };
  /** Unexpected process exits (crashes). */
  crashes: Array<{ name: string; code: number | null; signal: string | null }>;
  paramsHash: string | null;
  baselineParamsHash: string | null;
  identical: boolean;
  finalLoss: number | null;
  baselineFinalLoss: number | null;
  losses: number[];
  /** Scenarios that serve while they train (`serve`): the load's outcome. */
  serving?: ServingReport;
  /** The faulted run's ledger, verified with every update re-executed (docs/ledger.md); absent with the ledger off. */
  ledger?: LedgerSummary;
  durationMs: number;
  reportDir?: string;
}

/** The object printed with --json (losses left out: they are in report.json and the SVG). */
export function contractJson(r: ScenarioReport): Record<string, unknown> {
  const { losses: _l, ...rest } = r;
  return rest;
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));

export function formatReport(r: ScenarioReport): string {
  const lines = [
    `scenario ${r.scenario}: ${r.passed ? 'PASSED' : `FAILED — ${r.reason}`}`,
    `  ${r.description}`,
    `  ${r.model}, seed ${r.seed}, ${r.steps} steps × batch ${r.batch}, ${r.pnodes} PNodes, ${(r.durationMs / 1000).toFixed(1)} s`,
    '',
    'FAULT                 AT STEP  TARGET          DETAIL',
    ...r.faults.map((f) => `${pad(f.kind, 21)} ${pad(String(f.atStep), 8)} ${pad(f.target, 15)} ${f.detail.length > 90 ? `${f.detail.slice(0, 87)}…` : f.detail}`),
    '',
    r.recovery.length ? 'RECOVERY    PNODE        DETECT MS  RESUME MS  VNODES  REPLAYED' : 'RECOVERY    (no PNode declared dead)',
    ...r.recovery.map((x) => `            ${pad(x.pnode, 12)} ${pad(String(x.detectMs), 10)} ${pad(String(x.resumeMs), 10)} ${pad(String(x.vnodes), 7)} ${x.replayed}`),
    '',
    ...(r.serving ? [servingLines(r.serving), ''] : []),
    `updates     expected ${r.updates.expected}, applied ${r.updates.applied}, lost ${r.updates.lost}, duplicated ${r.updates.duplicated}`,
    ...(r.rollbacks ?? []).map((b) => `rolled back at step ${b.atStep} (${b.cause}): ${b.detail}`),
    `fenced      ${r.fencedWrites} stale writes refused`,
    `rejected    ${r.rejectedMessages} messages (dead-lettered, counted)`,
    ...(r.attacks.attempted ? [`attacks     ${r.attacks.refused} of ${r.attacks.attempted} refused`, ...r.attacks.list.map((a) => `  ${a.refused ? 'refused' : 'NOT REFUSED'}  ${a.name}: ${a.detail}`)] : []),
    `params      ${r.paramsHash?.slice(0, 16) ?? '—'}… vs baseline ${r.baselineParamsHash?.slice(0, 16) ?? '—'}… ${r.identical ? 'IDENTICAL' : 'DIFFERENT'}`,
    `final loss  ${r.finalLoss?.toFixed(4) ?? '—'} (baseline ${r.baselineFinalLoss?.toFixed(4) ?? '—'})`,
    '',
    'CHECK                          RESULT  DETAIL',
    ...r.checks.map((c) => `${pad(c.name, 30)} ${pad(c.passed ? 'pass' : 'FAIL', 7)} ${c.detail}`),
  ];
  if (r.reportDir) lines.push('', `report: ${r.reportDir}/report.json, ${r.reportDir}/loss.svg, process logs in ${r.reportDir}/logs/`);
  return lines.join('\n');
}

const esc = (s: string) => s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);

/** The loss per step as an SVG line, each fault a red vertical line at its step. */
export function lossSvg(r: ScenarioReport): string {
  const W = 800;
  const H = 360;
  const m = { l: 56, r: 16, t: 36, b: 40 };
  const pts = r.losses.map((l, i) => [i, l] as const).filter(([, l]) => Number.isFinite(l));
  const maxL = Math.max(1e-9, ...pts.map(([, l]) => l));
  const steps = Math.max(1, r.steps - 1);
  const x = (i: number) => m.l + (i / steps) * (W - m.l - m.r);
  const y = (l: number) => m.t + (1 - l / maxL) * (H - m.t - m.b);
  const path = pts.map(([i, l], k) => `${k ? 'L' : 'M'}${x(i).toFixed(1)},${y(l).toFixed(1)}`).join('');
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * maxL);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${m.l}" y="20" font-size="14" font-weight="bold">${esc(r.scenario)}: loss per step (${r.passed ? 'passed' : 'FAILED'}, params ${r.identical ? 'identical to' : 'differ from'} the fault-free run)</text>`,
    ...ticks.map((t) => `<line x1="${m.l}" x2="${W - m.r}" y1="${y(t)}" y2="${y(t)}" stroke="#eee"/><text x="${m.l - 6}" y="${y(t) + 4}" text-anchor="end" fill="#555">${t.toFixed(2)}</text>`),
    `<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="#999"/>`,
    `<text x="${(W + m.l) / 2}" y="${H - 8}" text-anchor="middle" fill="#555">step (0 … ${r.steps - 1})</text>`,
    ...r.faults.map(
      (f) =>
        `<line x1="${x(f.atStep)}" x2="${x(f.atStep)}" y1="${m.t}" y2="${H - m.b}" stroke="#d33" stroke-dasharray="4 3"/>` +
        `<text x="${x(f.atStep) + 4}" y="${m.t + 12}" fill="#d33">${esc(f.kind)} → ${esc(f.target)}</text>`,
    ),
    `<path d="${path}" fill="none" stroke="#1f6feb" stroke-width="1.5"/>`,
    `</svg>`,
    '',
  ].join('\n');
}

function servingLines(s: ServingReport): string {
  const p = (x: { requests: number; failed: number; p50Ms: number | null; p99Ms: number | null }) => `${pad(String(x.requests), 9)}${pad(String(x.failed), 8)}${pad(String(x.p50Ms ?? '—'), 8)}${x.p99Ms ?? '—'}`;
  return [
    `SERVING     version ${s.version ?? 'none'}, ${s.concurrency} clients: ${s.requests} requests, ${s.failed} failed, ${s.wrong} wrong (max |Δ| ${s.maxAbsDiff.toExponential(1)})`,
    '            PHASE    REQUESTS FAILED  P50 MS  P99 MS',
    `            before   ${p(s.phases.before)}`,
    `            during   ${p(s.phases.during)}`,
    `            after    ${p(s.phases.after)}`,
    ...s.errors.slice(0, 5).map((e) => `            error: ${e}`),
  ].join('\n');
}
