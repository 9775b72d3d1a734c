/**
 * Structured logs: a real child process logs through componentLog into a pipe (not a
 * TTY), so every line must be one JSON object with the right level; the level filter
 * and its validation work; JSON lines read back as human lines for `dcnr up`.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { humanLogLine } from './log.js';

const logModule = fileURLToPath(new URL('./log.ts', import.meta.url));
const script = `
  const { componentLog } = await import(${JSON.stringify(logModule)});
  const log = componentLog('pnode-9');
  log.line('PNode pnode-9 up');
  log.event({ type: 'dead', pnode: 'pnode-2', at: 1, lastHeartbeat: 0 });
  log.event({ type: 'activated', vnode: 'm.1', pnode: 'pnode-9', epoch: 1, at: 1, ms: 3 });
  log.line('{not json');
`;

function run(level?: string) {
  const env = { ...process.env, ...(level === undefined ? {} : { DCNR_LOG_LEVEL: level }) };
  delete (env as Record<string, string | undefined>).FORCE_COLOR;
  return spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', env });
}

test('off a terminal every line is one JSON object: events as fields, warn for a death, debug for an activation', () => {
  const r = run('debug');
  assert.is(r.status, 0, r.stderr);
  const lines = r.stderr.trim().split('\n').map((l) => JSON.parse(l));
  assert.is(lines.length, 4);
  assert.equal(lines.map((l) => l.level), [30, 40, 20, 30]);
  assert.ok(lines.every((l) => l.component === 'pnode-9' && typeof l.time === 'number'));
  assert.is(lines[1].event.type, 'dead');
  assert.is(lines[1].msg, 'dead pnode-2');
  assert.is(lines[3].msg, '{not json');
});

test('the default level is info; an unknown level is refused with the list', () => {
  const info = run();
  assert.is(info.stderr.trim().split('\n').length, 3, 'debug lines are filtered at info');
  const bad = run('loud');
  assert.is.not(bad.status, 0);
  assert.match(bad.stderr, /log level must be one of trace, debug, info, warn, error, silent, got "loud"/);
});

test('humanLogLine turns a JSON line into time, level and message; other text is unchanged', () => {
  const t = new Date(2026, 0, 1, 13, 5, 9).getTime();
  assert.is(humanLogLine(JSON.stringify({ level: 40, time: t, msg: 'dead pnode-6' })), '13:05:09 WARN  dead pnode-6');
  assert.is(humanLogLine('plain text'), 'plain text');
  assert.is(humanLogLine('{"level": broken'), '{"level": broken');
});

test.run();
