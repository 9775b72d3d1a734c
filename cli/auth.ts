/**
 * `dcnr auth init --dir DIR`: a network authority and the credentials of a fixed set of
 * processes, for deployments that are not launched by `dcnr up` (docker-compose.yml
 * runs it as its first service). Reuses the authority already in DIR; writes
 * `supervisor.creds`, `trainer.creds`, `observer.creds`, `admin.creds` and one
 * `<pnode>.creds` per `--pnodes` name, and with `--server-config FILE` the
 * nats-server configuration that turns auth on for them.
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULT_MAX_PAYLOAD } from '../cluster/nats-server.js';
import { ensureAuthority, serverAuthConfig, writeCreds } from '../runtime/security/authority.js';
import { fail, printResult } from './output.js';

export interface AuthInitOptions {
  dir: string;
  pnodes: string;
  serverConfig?: string;
  listen: string;
  jetstreamDir: string;
  json: boolean;
}

export async function authInitCommand(opts: AuthInitOptions): Promise<void> {
  const dir = resolve(opts.dir);
  const pnodes = opts.pnodes.split(',').map((p) => p.trim()).filter(Boolean);
  try {
    const authority = ensureAuthority(dir);
    const written = [
      await writeCreds(authority, 'supervisor', 'supervisor'),
      await writeCreds(authority, 'supervisor', 'admin'),
      await writeCreds(authority, 'trainer', 'trainer'),
      await writeCreds(authority, 'observer', 'observer'),
      ...(await Promise.all(pnodes.map((p) => writeCreds(authority, 'pnode', p)))),
    ];
    if (opts.serverConfig) {
      const lines = [
        '# Written by `dcnr auth init`: nats-server with JetStream and DCNR auth (operator mode).',
        `listen: ${JSON.stringify(opts.listen)}`,
        `max_payload: ${DEFAULT_MAX_PAYLOAD}`,
        `jetstream { store_dir: ${JSON.stringify(opts.jetstreamDir)} }`,
        ...(await serverAuthConfig(authority, join(opts.jetstreamDir, 'jwt'))),
        '',
      ];
      writeFileSync(resolve(opts.serverConfig), lines.join('\n'));
      written.push(resolve(opts.serverConfig));
    }
    printResult({ authority: dir, written }, opts.json, () => `network authority in ${dir}; wrote:\n${written.map((w) => `  ${w}`).join('\n')}`);
  } catch (err) {
    fail((err as Error).message, 1);
  }
}
