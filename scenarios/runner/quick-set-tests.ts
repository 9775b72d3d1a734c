/**
 * The CI quick set as uvu tests, in two parts (scenarios/quick-set-1.test.ts and
 * quick-set-2.test.ts): every quick built-in but kill-pnode (scenarios.test.ts runs it
 * through the CLI) must pass bit-identical with nothing lost or applied twice, plus what
 * each scenario promises of its own. Two files, each well under the test runner's 15
 * minutes per file on CI's slower machine: the ledger every scenario keeps and verifies
 * made the whole set longer than one file may take.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rmSync } from 'node:fs';
import { tempDir } from '../../test/helpers/nats.js';
import { builtinScenarios, loadScenario } from './load.js';
import { runScenario } from './run.js';

/** How many PNodes each quick scenario must see declared dead and recovered (at least). */
const RECOVERIES: Record<string, number> = {
  'pause-pnode': 1, // frozen past detection
  'restart-pnode': 1, // SIGKILLed; comes back under its name after its VNodes moved
  'kill-supervisor': 1, // the PNode killed under the new supervisor
  'kill-supervisor-leader': 1, // the PNode killed with the leader, recovered by the standby
  partition: 1, // cut off from NATS past detection
  churn: 2, // four rounds, every other one a SIGKILL
  'degrading-pnode': 1, // drained, then SIGKILLed: recovered with nothing left to move
  'kill-aggregator': 1, // the PNode of an aggregator (and of a replica)
  'kill-replica-pnode': 1, // the PNode of a replica's layers
};

/** Seconds each takes here (measured 2026-12-07, ledger on), to split the set evenly; others ≈ 25. */
const SECONDS: Record<string, number> = { 'degrading-pnode': 200, 'kill-pnode-names-gpt': 62, 'byzantine-pnode': 45, 'kill-aggregator': 47, 'kill-replica-pnode': 47, churn: 37 };

/** Every quick built-in (`quick: true`, what `dcnr scenario --quick-set` runs). kill-nats-node is left out: see README.md. */
export const quickSet = async (): Promise<string[]> =>
  (await Promise.all(builtinScenarios().map(loadScenario))).filter((s) => s.spec.quick).map((s) => s.spec.name);

/** Part `part` (1 or 2) of the quick set but kill-pnode: longest first, each to the part with less so far. */
export async function quickSetPart(part: 1 | 2): Promise<string[]> {
  const names = (await quickSet()).filter((n) => n !== 'kill-pnode').sort();
  const secs = (n: string) => SECONDS[n] ?? 25;
  const parts: [string[], string[]] = [[], []];
  const load = [0, 0];
  for (const n of [...names].sort((a, b) => secs(b) - secs(a) || a.localeCompare(b))) {
    const i = load[0] <= load[1] ? 0 : 1;
    parts[i].push(n);
    load[i] += secs(n);
  }
  return parts[part - 1].sort();
}

export async function registerQuickSetTests(part: 1 | 2): Promise<void> {
  const reports = tempDir('dcnr-scenario-reports-');
  const log = (line: string) => process.stderr.write(`  ${line}\n`);
  test.after(() => rmSync(reports, { recursive: true, force: true }));
  for (const name of await quickSetPart(part)) {
    test(`${name}: passes with identical parameters, nothing lost or applied twice`, async () => {
      const report = await runScenario(await loadScenario(name), { reportsDir: reports, log });
      const failed = report.checks.filter((c) => !c.passed);
      // The faults' own account goes with a failure (what the supervisor saw, risk, timings): CI keeps only this output.
      assert.is(report.passed, true, [...failed.map((c) => `${c.name}: ${c.detail}`), ...report.faults.map((f) => `[${f.kind}] ${f.detail}`)].join('; '));
      assert.is(report.identical, true);
      assert.is(report.updates.lost, 0);
      assert.is(report.updates.duplicated, 0);
      assert.is(report.crashes.length, 0);
      // The faulted run's ledger verifies, every update re-executed (docs/ledger.md).
      assert.ok(report.ledger?.verified, JSON.stringify(report.ledger));
      assert.is(report.ledger!.updates, report.updates.applied);
      const recoveries = RECOVERIES[name] ?? 0;
      if (recoveries) assert.ok(report.recovery.length >= recoveries, `${report.recovery.length} PNodes recovered, want >= ${recoveries}`);
      // Slow is not dead: it heartbeats on, so nothing may be moved off it.
      if (name === 'slow-pnode') assert.is(report.recovery.length, 0, 'no PNode declared dead');
      if (name === 'hostile-client' || name === 'rogue-pnode') {
        assert.ok(report.attacks.attempted >= 7, `${report.attacks.attempted} attacks tried`);
        assert.is(report.attacks.refused, report.attacks.attempted, JSON.stringify(report.attacks.list.filter((a) => !a.refused)));
        assert.is(report.rejectedMessages, report.faults[0].injectedMessages, 'every forged message rejected by its signature');
      }
      if (name === 'kill-supervisor-leader') {
        // Took over and placed (the time is reported, never asserted: docs/scenarios README).
        assert.ok(report.faults[0].takeoverMs !== undefined, report.faults[0].detail);
        assert.ok(report.faults[0].detail.includes('took over'), report.faults[0].detail);
      }
      if (name === 'malformed-messages') {
        assert.ok(report.faults[0].injectedMessages! >= 10_000);
        assert.is(report.rejectedMessages, report.faults[0].injectedMessages);
      }
      if (name === 'kill-nats' || name === 'restart-nats') {
        // The server may have lost what it acknowledged last: the run started again from its first step (docs/nats-durability.md).
        assert.ok(report.rollbacks?.some((r) => r.cause === 'nats-restart'), JSON.stringify(report.rollbacks));
      }
      if (name === 'byzantine-pnode') {
        // Caught, quarantined, and the run rolled back past its work: identical above.
        assert.ok(report.byzantine?.quarantined && report.byzantine.rolledBack, JSON.stringify(report.byzantine));
      }
    });
  }
}
