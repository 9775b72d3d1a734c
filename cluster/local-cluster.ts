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
import { startNatsServer, type NatsServer } from './nats-server.js';
import { PARENT_ENV } from './process.js';

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
  /** Extra `dcnr pnode` arguments for every PNode, e.g. `['--passivate-ms', '2000']`. */
  pnodeArgs?: string[];
  /** The NATS URL a PNode connects to (e.g. through a proxy). @default the cluster's URL */
  pnodeUrl?: (name: string) => string;
  /** Extra environment of one PNode (over `env`); a value of `undefined` removes a variable. */
  pnodeEnv?: (name: string) => Record<string, string | undefined>;
}

export interface LocalCluster {
  url: string;
  server: NatsServer | undefined;
  /** Child processes by name: `supervisor`, `pnode-1` … */
  procs: Map<string, ChildProcess>;
  spawnSupervisor(): ChildProcess;
  spawnPNode(name: string): ChildProcess;
  /** Stop every child (SIGTERM, then SIGKILL) and the private nats-server. */
  stop(): Promise<void>;
}

export async function startLocalCluster(o: LocalClusterOptions): Promise<LocalCluster> {
  const server = o.nats ? undefined : await startNatsServer({ storeDir: o.storeDir });
  const url = o.nats ?? server!.url;
  const procs = new Map<string, ChildProcess>();
  const logDir = join(o.storeDir, 'logs');
  if ((o.logs ?? 'files') === 'files') mkdirSync(logDir, { recursive: true });

  const launch = (name: string, args: string[], extraEnv: Record<string, string | undefined> = {}): ChildProcess => {
    const env: Record<string, string | undefined> = { ...process.env, ...o.env, ...extraEnv, [PARENT_ENV]: String(process.pid) };
    for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
    const child = spawn(process.execPath, [BIN, ...args], {
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
    spawnSupervisor: () => launch('supervisor', ['supervisor', '--nats', url, '--detect-ms', String(o.detectMs ?? 1000)]),
    spawnPNode: (name) => launch(name, ['pnode', '--nats', o.pnodeUrl?.(name) ?? url, '--name', name, ...(o.pnodeArgs ?? [])], o.pnodeEnv?.(name)),
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
    },
  };
  cluster.spawnSupervisor();
  for (let i = 1; i <= o.pnodes; i++) cluster.spawnPNode(`pnode-${i}`);
  return cluster;
}
