/** The checks every scenario run must pass, then the scenario's own; they decide `passed` and `reason`. */
import type { Scenario } from './define.js';
import type { ScenarioReport } from './report.js';

export interface CheckInput {
  trainError: string | undefined;
  faultErrors: string[];
  faultsPlanned: number;
  expectDead: string[];
  recovered: Set<string>;
  injectedMessages: number;
  alive: number;
  /** After a rollback: rejected messages that were sent by the rolled-back run's VNodes (unknown senders to the new run). */
  staleRejections?: number;
}

export function judge(report: ScenarioReport, scenario: Scenario, c: CheckInput): void {
  const check = (name: string, passed: boolean, detail: string) => report.checks.push({ name, passed, detail });
  const steps = scenario.spec.steps;
  check('training completed', !c.trainError, c.trainError ?? `${steps} steps`);
  check('every fault injected', c.faultErrors.length === 0 && report.faults.length === c.faultsPlanned, c.faultErrors.join('; ') || `${report.faults.length} of ${c.faultsPlanned}`);
  const short = (h: string | null) => `${h?.slice(0, 16) ?? 'none'}…`;
  check('identical to fault-free run', report.identical, report.identical ? `paramsHash ${short(report.baselineParamsHash)}` : `${short(report.paramsHash)} ≠ ${short(report.baselineParamsHash)}`);
  check('no update lost', report.updates.lost === 0, `${report.updates.applied} of ${report.updates.expected} applied`);
  check('no update applied twice', report.updates.duplicated === 0, `${report.updates.duplicated} extra`);
  const unrecovered = c.expectDead.filter((p) => !c.recovered.has(p));
  check('every dead PNode recovered', unrecovered.length === 0, unrecovered.length ? `no recovery of ${unrecovered.join(', ')}` : c.expectDead.length ? `${c.expectDead.join(', ')}: VNodes moved and resumed` : 'none died');
  check('no process crashed', report.crashes.length === 0, report.crashes.map((x) => `${x.name} exited ${x.signal ?? x.code}`).join(', ') || "every exit was a fault's");
  if (report.rollbacks) {
    // The rolled-back run's VNodes were still sending when the new run started: the new run refuses them, and only them
    // (and what the old run's own VNodes refused: after a nats-server crash, the gaps the rollback repairs).
    const stale = c.staleRejections ?? 0;
    check('no message rejected but the rolled-back run\'s', report.rejectedMessages === stale, `${report.rejectedMessages} rejected, ${stale} of them sent by the rolled-back run's VNodes`);
  } else if (c.injectedMessages > 0) {
    check('every bad message rejected', report.rejectedMessages === c.injectedMessages, `${report.rejectedMessages} of ${c.injectedMessages} rejected and dead-lettered`);
  } else {
    check('no message rejected', report.rejectedMessages === 0, `${report.rejectedMessages} rejected`);
  }
  check('a PNode alive at the end', c.alive > 0, `${c.alive} alive`);
  if (report.attacks.attempted > 0) {
    const through = report.attacks.list.filter((a) => !a.refused).map((a) => a.name);
    check('every attack refused', through.length === 0, through.length ? `not refused: ${through.join('; ')}` : `${report.attacks.refused} of ${report.attacks.attempted} refused`);
  }
  if (report.serving) {
    const s = report.serving;
    check('every request served', s.version !== null && s.failed === 0 && s.requests > 0, s.version === null ? `never served: ${s.errors.join('; ') || 'no version'}` : `${s.requests - s.failed} of ${s.requests}${s.errors.length ? ` (${s.errors[0]})` : ''}`);
    check('answers from the pinned version', s.wrong === 0, `${s.wrong} of ${s.requests - s.failed} differ from version ${s.version}'s offline forward (max |Δ| ${s.maxAbsDiff.toExponential(1)})`);
  }
  if (report.ledger) {
    const l = report.ledger;
    const ok = l.verified && l.updates === report.updates.applied && l.recomputed === l.entries;
    check(
      'the ledger verifies',
      ok,
      l.error ??
        `${l.entries} messages recorded (${l.updates} updates, ${report.updates.applied} applied), ${l.recomputed} re-executed, chain ${l.chainOk ? 'ok' : 'BROKEN'}, signatures ${l.signaturesOk ? 'ok' : 'BAD'}` +
          (l.orphans ? `, ${l.orphans} orphaned entries` : '') +
          (l.unverifiable ? `, ${l.unverifiable} without their evidence` : '') +
          (l.mismatches.length ? `; ${l.mismatches.length} mismatches, first: ${l.mismatches[0].vnode} seq ${l.mismatches[0].seq} on ${l.mismatches[0].pnode}: ${l.mismatches[0].reason}` : ''),
    );
  }
  for (const own of scenario.checks) report.checks.push(own(report));
  report.passed = report.checks.every((x) => x.passed);
  const failed = report.checks.find((x) => !x.passed);
  report.reason = failed ? `${failed.name}: ${failed.detail}` : '';
}
