/**
 * docker-compose.yml runs exactly the CLI: every service built from our image has a
 * command that parses as a valid `dcnr` invocation (checked with DCNR_DRY_RUN=1, which
 * runs the real argument parser and nothing else), and the file passes
 * `docker-compose config -q` where docker-compose is installed (CI installs it).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = fileURLToPath(new URL('../bin/dcnr.js', import.meta.url));
const compose = parse(readFileSync(`${root}/docker-compose.yml`, 'utf8')) as { services: Record<string, { image?: string; build?: unknown; command?: string[]; environment?: Record<string, string> }> };

const dcnrServices = Object.entries(compose.services).filter(([, s]) => s.build !== undefined || s.image?.startsWith('dcnr'));

test('the compose file has auth, nats, two supervisors, three PNodes and a trainer, each with its own credentials', () => {
  const commands = dcnrServices.map(([, s]) => s.command?.[0]);
  assert.ok(compose.services.nats, 'a nats service');
  assert.is(commands.filter((c) => c === 'auth').length, 1, 'an auth service writes the credentials');
  assert.equal(compose.services.nats.command, ['-c', '/auth/nats.conf', '-m', '8222'], 'nats runs the generated config (auth on)');
  for (const [name, s] of dcnrServices.filter(([, s]) => s.command?.[0] !== 'auth')) {
    const creds = s.environment?.DCNR_CREDS;
    const role = s.command![0] === 'pnode' ? name : s.command![0] === 'train' ? 'trainer' : s.command![0]; // both supervisors: supervisor.creds
    assert.is(creds, `/auth/${role}.creds`, `${name} connects with its own role's credentials`);
  }
  const supervisors = dcnrServices.filter(([, s]) => s.command?.[0] === 'supervisor').map(([, s]) => s.command![s.command!.indexOf('--name') + 1]);
  assert.equal(supervisors, ['supervisor', 'supervisor-2'], 'two supervisors, each named (one leads, one stands by)');
  assert.is(commands.filter((c) => c === 'pnode').length, 3);
  assert.is(commands.filter((c) => c === 'train').length, 1);
});

for (const [name, service] of dcnrServices) {
  test(`service ${name}: \`dcnr ${service.command!.join(' ')}\` parses`, () => {
    const out = spawnSync(process.execPath, [bin, ...service.command!], { encoding: 'utf8', env: { ...process.env, DCNR_DRY_RUN: '1' } });
    assert.is(out.status, 0, out.stderr);
    const parsed = JSON.parse(out.stdout.trim().split('\n').pop()!);
    assert.is(parsed.command, service.command![0] === 'auth' ? service.command![1] : service.command![0]);
    if (service.command![0] !== 'auth') assert.is(parsed.options.nats, 'nats://nats:4222');
  });
}

test('an invalid command is refused by the same parser (the check can fail)', () => {
  const out = spawnSync(process.execPath, [bin, 'pnode', '--natz', 'x'], { encoding: 'utf8', env: { ...process.env, DCNR_DRY_RUN: '1' } });
  assert.is.not(out.status, 0);
  assert.match(out.stderr, /unknown option '--natz'/);
});

const hasCompose = spawnSync('sh', ['-c', 'command -v docker-compose']).status === 0;
test('docker-compose config -q accepts the file', () => {
  if (!hasCompose) {
    if (process.env.CI) assert.unreachable('CI must have docker-compose (scripts/setup.sh with DCNR_SETUP_COMPOSE=1)');
    console.warn('   (docker-compose not installed: skipped the schema check)');
    return;
  }
  const out = spawnSync('docker-compose', ['-f', `${root}/docker-compose.yml`, 'config', '-q'], { encoding: 'utf8' });
  assert.is(out.status, 0, out.stderr);
});

test.run();
