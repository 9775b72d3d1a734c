/**
 * The runner's reading of a file's result, fed outputs uvu 0.5.6 really printed
 * (captured into test/fixtures/uvu-output/ with FORCE_COLOR=0 from the small files
 * their names describe) and their real exit codes.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { parseUvuSummary, scoreFile } from './uvu-summary.js';

const captured = (name: string) => readFileSync(new URL(`./fixtures/uvu-output/${name}.txt`, import.meta.url), 'utf8');

const parse = suite('parseUvuSummary');

parse('two suites, one .skip: one summary for the process, Skipped outside Total', () => {
  assert.equal(parseUvuSummary(captured('pass')), { total: 3, passed: 3, skipped: 1 });
});

parse('.only: Total is the .only tests, Skipped the rest', () => {
  assert.equal(parseUvuSummary(captured('only')), { total: 1, passed: 1, skipped: 4 });
});

parse('a test that prints a summary look-alike first: the last block (uvu\'s) wins', () => {
  assert.equal(parseUvuSummary(captured('printer')), { total: 2, passed: 1, skipped: 0 });
});

parse('with colours on, and no summary at all', () => {
  const coloured = '\n  Total:     4\x1b[32m\n  Passed:    4\x1b[39m\n  Skipped:   \x1b[33m1\x1b[39m\n  Duration:  1ms\n';
  assert.equal(parseUvuSummary(coloured), { total: 4, passed: 4, skipped: 1 });
  assert.is(parseUvuSummary('Error: Cannot find module x\n'), null);
});

parse.run();

const score = suite('scoreFile');

score('passing file with a .skip: every test passed, none failed (not -1)', () => {
  assert.equal(scoreFile({ code: 0, output: captured('pass') }), { passed: 3, failed: 0, skipped: 1 });
});

score('.only: nothing failed (not negative), the left-out tests reported as skipped', () => {
  assert.equal(scoreFile({ code: 0, output: captured('only') }), { passed: 1, failed: 0, skipped: 4 });
});

score('one of three fails', () => {
  assert.equal(scoreFile({ code: 1, output: captured('fail') }), { passed: 2, failed: 1, skipped: 0 });
});

score('the look-alike a test printed (7 of 7) does not hide the failure', () => {
  assert.equal(scoreFile({ code: 1, output: captured('printer') }), { passed: 1, failed: 1, skipped: 0 });
});

score('Total: 0 is a failure: the file ran no test', () => {
  assert.equal(scoreFile({ code: 0, output: captured('empty') }), { passed: 0, failed: 1, skipped: 0, reason: 'ran no test' });
});

score('a crash before the summary, a clean exit without one, a timeout, a non-zero exit after all passed', () => {
  assert.equal(scoreFile({ code: 1, output: 'SyntaxError: x\n' }), { passed: 0, failed: 1, skipped: 0, reason: "exit 1 before uvu's summary" });
  assert.equal(scoreFile({ code: 0, output: 'hello\n' }), { passed: 0, failed: 1, skipped: 0, reason: 'printed no uvu summary' });
  assert.equal(scoreFile({ code: null, output: 'half way\n', timedOut: true }), { passed: 0, failed: 1, skipped: 0, reason: 'timed out' });
  assert.equal(scoreFile({ code: 1, output: captured('pass') }), { passed: 3, failed: 1, skipped: 1, reason: 'exit 1 with every test passed' });
});

score.run();
