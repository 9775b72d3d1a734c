/**
 * The scenario runner for real: the CI quick set (every built-in but kill-nats-node;
 * kill-pnode through the CLI contract) must pass bit-identical with nothing lost or
 * applied twice, and a scenario that leaves no PNode alive must fail with a
 * reason and exit code 1 instead of hanging.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../test/helpers/nats.js';
import { defineScenario } from './runner/define.js';
import { builtinScenarios, loadScenario } from './runner/load.js';
import { runScenario } from './runner/run.js';

const bin = fileURLToPath(new URL('../bin/dcnr.js', import.meta.url));
const reports = tempDir('dcnr-scenario-reports-');
const log = (line: string) => process.stderr.write(`  ${line}\n`);

function dcnr(args: string[]) {
  return spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 600_000 });
}

test.after(() => rmSync(reports, { recursive: true, force: true }));

test('a scenario definition is validated, naming the bad field', () => {
  assert.throws(() => defineScenario({ name: 'Bad Name', description: 'x', faults: [{ kind: 'kill-pnode', atStep: 1 }] }), /name: name must be kebab-case/);
  assert.throws(() => defineScenario({ name: 'ok', description: 'x', faults: [] }), /faults: a scenario injects at least one fault/);
  assert.throws(() => defineScenario({ name: 'ok', description: 'x', steps: 5, faults: [{ kind: 'kill-pnode', atStep: 1 }] }), /steps/);
});

test('the built-ins load; an unknown name or a file that is not a scenario gets a clear error', async () => {
  const names = builtinScenarios();
  for (const n of ['kill-pnode', 'pause-pnode', 'restart-pnode', 'slow-pnode', 'kill-supervisor', 'kill-supervisor-leader', 'restart-nats', 'kill-nats', 'kill-nats-node', 'partition', 'malformed-messages', 'churn', 'hostile-client', 'rogue-pnode']) {
    assert.ok(names.includes(n), `built-in ${n}`);
    assert.is((await loadScenario(n)).spec.name, n);
  }
  await loadScenario('warp-core-breach').then(
    () => assert.unreachable(),
    (err: Error) => assert.match(err.message, /neither a built-in scenario \(churn, degrading-pnode, hostile-client/),
  );
  await loadScenario(fileURLToPath(new URL('./runner/define.ts', import.meta.url))).then(
    () => assert.unreachable(),
    (err: Error) => assert.match(err.message, /default export must be defineScenario/),
  );
});

test('dcnr scenario kill-pnode --seed 3 --json: passes, the contract JSON is the last line, report files written', () => {
  const r = dcnr(['scenario', 'kill-pnode', '--seed', '3', '--json', '--reports', reports]);
  assert.is(r.status, 0, r.stderr.slice(-3000));
  const json = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  for (const key of ['scenario', 'passed', 'checks', 'faults', 'recovery', 'updates', 'fencedWrites', 'paramsHash', 'baselineParamsHash', 'identical', 'finalLoss', 'durationMs']) {
    assert.ok(key in json, `field ${key}`);
  }
  assert.is(json.scenario, 'kill-pnode');
  assert.is(json.passed, true);
  assert.is(json.identical, true);
  assert.is(json.paramsHash, json.baselineParamsHash);
  assert.equal({ lost: json.updates.lost, duplicated: json.updates.duplicated }, { lost: 0, duplicated: 0 });
  assert.is(json.updates.applied, json.updates.expected);
  assert.is(json.faults[0].kind, 'kill-pnode');
  assert.is(json.faults[0].atStep, 60);
  assert.ok(json.recovery.length >= 1 && json.recovery[0].detectMs > 0, JSON.stringify(json.recovery));
  assert.ok(json.checks.every((c: { passed: boolean }) => c.passed));
  const saved = JSON.parse(readFileSync(join(json.reportDir, 'report.json'), 'utf8'));
  assert.is(saved.paramsHash, json.paramsHash);
  assert.is(saved.losses.length, 200);
  const svg = readFileSync(join(json.reportDir, 'loss.svg'), 'utf8');
  assert.match(svg, /^<svg/);
  assert.match(svg, /kill-pnode → pnode-/);
});

/** How many PNodes each quick scenario must see declared dead and recovered (at least). */
const RECOVERIES: Record<string, number> = {
  'pause-pnode': 1, // frozen past detection
  'restart-pnode': 1, // SIGKILLed; comes back under its name after its VNodes moved
  'kill-supervisor': 1, // the PNode killed under the new supervisor
  'kill-supervisor-leader': 1, // the PNode killed with the leader, recovered by the standby
  partition: 1, // cut off from NATS past detection
  churn: 2, // four rounds, every other one a SIGKILL
  'degrading-pnode': 1, // drained, then SIGKILLed: recovered with nothing left to move
};

// Every quick built-in (`quick: true`, what `dcnr scenario --quick-set` runs) but
// kill-pnode, run above through the CLI. kill-nats-node is left out: see README.md.
const quickSet = await Promise.all(builtinScenarios().map(loadScenario)).then((all) => all.filter((s) => s.spec.quick).map((s) => s.spec.name));

test('the quick set is every built-in but kill-nats-node', () => {
  assert.equal([...quickSet].sort(), builtinScenarios().filter((n) => n !== 'kill-nats-node').sort());
});

for (const name of quickSet.filter((n) => n !== 'kill-pnode')) {
  test(`${name}: passes with identical parameters, nothing lost or applied twice`, async () => {
    const report = await runScenario(await loadScenario(name), { reportsDir: reports, log });
    const failed = report.checks.filter((c) => !c.passed);
    // The faults' own account goes with a failure (what the supervisor saw, risk, timings): CI keeps only this output.
    assert.is(report.passed, true, [...failed.map((c) => `${c.name}: ${c.detail}`), ...report.faults.map((f) => `[${f.kind}] ${f.detail}`)].join('; '));
    assert.is(report.identical, true);
    assert.is(report.updates.lost, 0);
    assert.is(report.updates.duplicated, 0);
    assert.is(report.crashes.length, 0);
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
  });
}

// The checkpoint interval is not part of the math: both ends of it must give the
// fault-free parameters. checkpointEvery 1 commits every message (no replay); 1000
// never checkpoints by count in this 200-step run, so the kill lands between two
// time checkpoints and the moved VNodes replay what they had applied since.
for (const checkpointEvery of [1, 1000]) {
  test(`kill-pnode at checkpointEvery ${checkpointEvery}: identical, nothing lost or applied twice`, async () => {
    const report = await runScenario(await loadScenario('kill-pnode'), { reportsDir: reports, log, checkpointEvery });
    const failed = report.checks.filter((c) => !c.passed);
    // The faults' own account goes with a failure (what the supervisor saw, risk, timings): CI keeps only this output.
    assert.is(report.passed, true, [...failed.map((c) => `${c.name}: ${c.detail}`), ...report.faults.map((f) => `[${f.kind}] ${f.detail}`)].join('; '));
    assert.is(report.identical, true);
    assert.equal({ lost: report.updates.lost, duplicated: report.updates.duplicated }, { lost: 0, duplicated: 0 });
    assert.ok(report.recovery.length >= 1, 'the PNode was declared dead and its VNodes moved');
    const replayed = report.recovery.reduce((n, r) => n + r.replayed, 0);
    if (checkpointEvery === 1000) assert.ok(replayed > 0, `the moved VNodes replayed their backlog since the checkpoint (${replayed})`);
  });
}

test('the runner says no: every PNode killed for good → passed false, a reason, exit code 1', () => {
  const file = fileURLToPath(new URL('./examples/no-survivors.ts', import.meta.url));
  const r = dcnr(['scenario', file, '--json', '--reports', reports]);
  assert.is(r.status, 1, r.stderr.slice(-2000));
  const json = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  assert.is(json.passed, false);
  assert.match(json.reason, /no PNode alive/);
  const completed = json.checks.find((c: { name: string }) => c.name === 'training completed');
  assert.is(completed.passed, false);
  assert.is(json.paramsHash, null);
  assert.ok(existsSync(join(json.reportDir, 'report.json')));
});

test.run();
