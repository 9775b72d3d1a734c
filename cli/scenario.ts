/**
 * `dcnr scenario NAME|FILE [--seed S] [--json] [--reports DIR]`: a fault-injection run
 * on a fresh private cluster, compared with a fault-free run of the same seed. Exit 0
 * iff every check holds. `--list` names the built-ins; `--all` / `--quick-set` run
 * several and print a summary table (`npm run scenarios`). `--model` / `--batch` run the
 * same fault schedules on another model (the quick set on names-gpt: `--model names-gpt --batch 16`).
 */
import { builtinScenarios, loadScenario } from '../scenarios/runner/load.js';
import { contractJson, formatReport, type ScenarioReport } from '../scenarios/runner/report.js';
import { runScenario } from '../scenarios/runner/run.js';
import { fail } from './output.js';

export interface ScenarioCliOptions {
  seed?: number;
  json: boolean;
  reports: string;
  list: boolean;
  all: boolean;
  quickSet: boolean;
  checkpointEvery?: number;
  /** Runs every scenario on this model (built-in name or spec file) instead of its own. */
  model?: string;
  batch?: number;
  steps?: number;
  /** false: `--no-ledger`. */
  ledger?: boolean;
}

export async function scenarioCommand(nameOrFile: string | undefined, opts: ScenarioCliOptions): Promise<void> {
  if (opts.list) {
    for (const name of builtinScenarios()) {
      const s = await loadScenario(name);
      process.stdout.write(`${name.padEnd(20)} ${s.spec.quick ? 'quick ' : '      '}${s.spec.description}\n`);
    }
    return;
  }
  let names: string[];
  if (opts.all || opts.quickSet) {
    if (nameOrFile) fail('give a scenario name or --all/--quick-set, not both');
    names = [];
    for (const n of builtinScenarios()) if (opts.all || (await loadScenario(n)).spec.quick) names.push(n);
  } else if (nameOrFile) {
    names = [nameOrFile];
  } else {
    fail(`which scenario? built-ins: ${builtinScenarios().join(', ')} (or a file, --all, --quick-set, --list)`);
  }

  const reports: ScenarioReport[] = [];
  for (const name of names) {
    let scenario;
    try {
      scenario = await loadScenario(name);
    } catch (err) {
      fail((err as Error).message);
    }
    const log = (line: string) => process.stderr.write(`[${scenario.spec.name}] ${line}\n`);
    let report: ScenarioReport;
    try {
      report = await runScenario(scenario, { seed: opts.seed, reportsDir: opts.reports, log, checkpointEvery: opts.checkpointEvery, model: opts.model, batch: opts.batch, steps: opts.steps, ledger: opts.ledger });
    } catch (err) {
      fail(`scenario ${scenario.spec.name} could not run: ${(err as Error).stack ?? err}`, 1);
    }
    reports.push(report);
    if (names.length > 1 || !opts.json) process.stdout.write(`${formatReport(report)}\n\n`);
  }
  if (names.length > 1) {
    process.stdout.write(summaryTable(reports));
    if (opts.json) process.stdout.write(`${JSON.stringify({ passed: reports.every((r) => r.passed), scenarios: reports.map(contractJson) })}\n`);
  } else if (opts.json) {
    process.stderr.write(`${formatReport(reports[0])}\n`);
    process.stdout.write(`${JSON.stringify(contractJson(reports[0]))}\n`);
  }
  process.exitCode = reports.every((r) => r.passed) ? 0 : 1;
}

/** One line per scenario: the closing-note table. */
export function summaryTable(reports: ScenarioReport[]): string {
  const rows = reports.map((r) => {
    const det = r.recovery.map((x) => x.detectMs).join('/') || '—';
    const res = r.recovery.map((x) => x.resumeMs).join('/') || '—';
    return `| ${r.scenario} | ${r.passed ? 'pass' : 'FAIL'} | ${det} | ${res} | ${r.updates.expected} | ${r.updates.applied} | ${r.updates.lost} | ${r.updates.duplicated} | ${r.fencedWrites} | ${r.rejectedMessages} | ${r.identical} | ${(r.durationMs / 1000).toFixed(0)} s |`;
  });
  return [
    '| scenario | result | detect ms | resume ms | expected | applied | lost | duplicated | fenced writes | rejected | identical | time |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|',
    ...rows,
    '',
  ].join('\n');
}
