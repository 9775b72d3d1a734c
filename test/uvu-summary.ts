/**
 * Reading one test file's result out of its output: uvu's final summary block and the
 * process's exit. Pure, so `uvu-summary.test.ts` can feed it real uvu outputs.
 *
 * uvu 0.5.6 prints, once per process after every suite ran:
 * ```
 *   Total:     N   tests that ran (with `.only` in a suite: only its `.only` tests)
 *   Passed:    N   of those, the ones that passed
 *   Skipped:   N   `.skip` tests, plus the tests a `.only` left out; never in Total
 * ```
 * so the failed count is Total − Passed, and Skipped is only reported.
 */

/** uvu's final summary of one process. */
export interface UvuSummary {
  total: number;
  passed: number;
  skipped: number;
}

/** What one test file adds to the run's `N passed, N failed`. */
export interface FileScore {
  passed: number;
  failed: number;
  skipped: number;
  /** Why the file failed beyond its failed tests (crash, no test, timeout); absent when it did not. */
  reason?: string;
}

const strip = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');
const SUMMARY = /^\s*Total:\s+(\d+)\s*\n\s*Passed:\s+(\d+)\s*\n\s*Skipped:\s+(\d+)\s*$/gm;

/**
 * The LAST summary block in `output` (uvu prints its own after everything a test
 * printed, so an earlier look-alike is a test's output), or null when there is none.
 *
 * @example
 * parseUvuSummary('  Total:     3\n  Passed:    2\n  Skipped:   0\n') // { total: 3, passed: 2, skipped: 0 }
 */
export function parseUvuSummary(output: string): UvuSummary | null {
  let last: RegExpMatchArray | null = null;
  for (const m of strip(output).matchAll(SUMMARY)) last = m;
  if (!last) return null;
  return { total: Number(last[1]), passed: Number(last[2]), skipped: Number(last[3]) };
}

/**
 * Score one file from its exit code and output. A file fails (at least one failed)
 * when it timed out, exited non-zero, printed no summary, or ran no test at all.
 */
export function scoreFile(run: { code: number | null; output: string; timedOut?: boolean }): FileScore {
  const summary = parseUvuSummary(run.output);
  const passed = summary?.passed ?? 0;
  const skipped = summary?.skipped ?? 0;
  let failed = summary ? Math.max(0, summary.total - summary.passed) : 0;
  let reason: string | undefined;
  if (run.timedOut) reason = 'timed out';
  else if (!summary) reason = run.code === 0 ? 'printed no uvu summary' : `exit ${run.code} before uvu's summary`;
  else if (summary.total === 0) reason = 'ran no test';
  else if (run.code !== 0 && failed === 0) reason = `exit ${run.code} with every test passed`;
  if (reason && failed === 0) failed = 1;
  return reason ? { passed, failed, skipped, reason } : { passed, failed, skipped };
}
