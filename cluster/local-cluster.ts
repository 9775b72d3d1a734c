/**
 * A local cluster as plain processes: nats-server (unless a URL is given), one
 * supervisor and N PNodes, each a `dcnr` child process — exactly what
 * docker-compose runs, without containers. Used by `dcnr up`, `dcnr train --pnodes N`
 * and the cluster tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { humanLogLine } from '../runtime/log.js';
import { freePort, startNatsServer, type NatsServer } from './nats-server.js';
import { authDefault, AUTHORITY_ENV, ensureAuthority, writeCreds, type Authority } from '../runtime/security/authority.js';
import { CREDS_ENV, forgetCreds, PARENT_ENV, registerCreds } from './process.js';

const BIN = fileURLToPath(new URL('../bin/dcnr.js', import.meta.url));

export interface LocalClusterOptions {
  pnodes: number;
  /** Use this NATS server instead of starting one. */
  nats?: string;
  /** Store of the private nats-server, and `logs/` when `logs` is 'files'. */
  storeDir: string;
  /** 'prefix': every child line to our stderr as `[name] line`; 'files': `<storeDir>/logs/<name>.log`. @default 'files' */
  logs?: 'prefix' | 'files';
  /** Extra environment for the children. */
  env?: Record<string, string>;
  /** Supervisor's detection timeout. @default 1000 */
  detectMs?: number;
  /** Supervisors: one leads, the others stand by (supervisor/leadership.ts); named `supervisor`, `supervisor-2` … @default 1 */
  supervisors?: number;
  /** Extra `dcnr pnode` arguments for every PNode, e.g. `['--passivate-ms', '2000']`. */
  pnodeArgs?: string[];
  /** The NATS URL a PNode connects to (e.g. through a proxy). @default the cluster's URL */
  pnodeUrl?: (name: string) => string;
  /** Extra environment of one PNode (over `env`); a value of `undefined` removes a variable. */
  pnodeEnv?: (name: string) => Record<string, string | undefined>;
  /**
   * Auth on (the default for a private nats-server): a network authority in
   * `<storeDir>/auth` (kept with the store), role credentials for each child, and
   * `<storeDir>/auth/admin.creds` for our own connections (see `registerCreds`).
   * With `nats` given, children use `DCNR_CREDS` as they find it, unless `authority`
   * (that server's) is given too. `DCNR_AUTH=off` turns the default off.
   * @default true
   */
  auth?: boolean;
  /** The authority of the `nats` server(s) given: children get credentials it issues. */
  authority?: Authority;
}

export interface LocalCluster {
  url: string;
  server: NatsServer | undefined;
  /** Child processes by name: `supervisor`, `pnode-1` … */
  procs: Map<string, ChildProcess>;
  /** The network authority when auth is on (its directory holds every credentials file). */
  authority: Authority | undefined;
  /** Where PNodes join (`dcnr pnode --join URL`) when auth is on: the supervisor's registrar. */
  registrarUrl: string | undefined;
  /** Credentials files by role (`admin` is ours: the network's creator). */
  creds: { admin: string; trainer: string; observer: string } | undefined;
  /** Start a supervisor (`supervisor` unless named: `supervisor-2` …). */
  spawnSupervisor(name?: string): ChildProcess;
  /** A PNode process (its PNode credentials issued first when auth is on). */
  spawnPNode(name: string): Promise<ChildProcess>;
  /** Stop every child (SIGTERM, then SIGKILL) and the private nats-server. */
  stop(): Promise<void>;
}

/**
 * A private nats-server on `storeDir`, auth on unless `auth` is false (or `DCNR_AUTH=off`):
 * its authority in `<storeDir>/auth`, and `admin.creds` there registered for our own
 * connections to it (`connectNats`). Used by `startLocalCluster` and `train --pnodes 0`.
 */
export async function startPrivateNats(storeDir: string, auth = authDefault()): Promise<{ server: NatsServer; authority?: Authority; adminCreds?: string }> {
  const authority = auth ? ensureAuthority(join(storeDir, 'auth')) : undefined;
  const server = await startNatsServer({ storeDir, auth: authority });
  if (!authority) return { server };
  const adminCreds = await writeCreds(authority, 'supervisor', 'admin');
  registerCreds(server.url, adminCreds);
  return { server, authority, adminCreds };
}

export async function startLocalCluster(o: LocalClusterOptions): Promise<LocalCluster> {
  const own = o.nats ? undefined : await startPrivateNats(o.storeDir, o.auth);
  const server = own?.server;
  const url = o.nats ?? server!.url;
  const authority = o.authority ?? own?.authority;
  const creds = authority && {
    admin: own?.adminCreds ?? (await writeCreds(authority, 'supervisor', 'admin')),
    trainer: await writeCreds(authority, 'trainer', 'trainer'),
    observer: await writeCreds(authority, 'observer', 'observer'),
  };
  const supervisorCreds = authority && (await writeCreds(authority, 'supervisor', 'supervisor'));
  // The registrar's port is fixed for the cluster's life: a restarted supervisor serves it again.
  const registrarPort = authority && (await freePort());
  if (creds) registerCreds(url, creds.admin);
  const procs = new Map<string, ChildProcess>();
  const logDir = join(o.storeDir, 'logs');
  if ((o.logs ?? 'files') === 'files') mkdirSync(logDir, { recursive: true });

  const launch = (name: string, args: string[], extraEnv: Record<string, string | undefined> = {}): ChildProcess => {
    const env: Record<string, string | undefined> = { ...process.env, ...o.env, ...extraEnv, [PARENT_ENV]: String(process.pid) };
    for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
    const child = spawn(process.execPath, [...childNodeArgs(), BIN, ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if ((o.logs ?? 'files') === 'files') {
      const out = createWriteStream(join(logDir, `${name}.log`), { flags: 'a' });
      child.stdout!.pipe(out);
      child.stderr!.pipe(out);
    } else {
      for (const stream of [child.stdout!, child.stderr!]) {
        const show = process.stderr.isTTY ? humanLogLine : (l: string) => l;
        createInterface({ input: stream }).on('line', (line) => process.stderr.write(`[${name}] ${show(line)}\n`));
      }
    }
    procs.set(name, child);
    return child;
  };

  const cluster: LocalCluster = {
    url,
    server,
    procs,
    authority,
    creds,
    registrarUrl: registrarPort ? `http://127.0.0.1:${registrarPort}/` : undefined,
    spawnSupervisor: (name = 'supervisor') =>
      launch(
        name,
        ['supervisor', '--nats', url, '--name', name, '--detect-ms', String(o.detectMs ?? 1000), ...(registrarPort ? ['--registrar-port', String(registrarPort)] : [])],
        authority ? { [CREDS_ENV]: supervisorCreds, [AUTHORITY_ENV]: authority.dir } : {},
      ),
    async spawnPNode(name) {
      const auth = authority ? { [CREDS_ENV]: await writeCreds(authority, 'pnode', name) } : {};
      return launch(name, ['pnode', '--nats', o.pnodeUrl?.(name) ?? url, '--name', name, ...(o.pnodeArgs ?? [])], { ...auth, ...o.pnodeEnv?.(name) });
    },
    async stop() {
      await Promise.all(
        [...procs.values()].map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
              child.once('exit', () => {
                clearTimeout(kill);
                resolve();
              });
              // A SIGSTOPped child cannot act on SIGTERM.
              child.kill('SIGCONT');
              child.kill('SIGTERM');
            }),
        ),
      );
      await server?.stop();
      if (creds) forgetCreds(url);
    },
  };
  cluster.spawnSupervisor();
  for (let i = 2; i <= (o.supervisors ?? 1); i++) cluster.spawnSupervisor(`supervisor-${i}`);
  for (let i = 1; i <= o.pnodes; i++) await cluster.spawnPNode(`pnode-${i}`);
  return cluster;
}

/**
 * Extra node flags for every process a local cluster starts, from env
 * `DCNR_CHILD_NODE_ARGS` (space-separated), for profiling: node refuses `--cpu-prof` in
 * NODE_OPTIONS, so `DCNR_CHILD_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"` is how
 * to profile the PNodes and the supervisor of `dcnr train --pnodes N`.
 */
function childNodeArgs(): string[] {
  return (process.env.DCNR_CHILD_NODE_ARGS ?? '').split(' ').filter(Boolean);
}
