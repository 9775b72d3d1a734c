/**
 * Start and stop a private `nats-server -js` on a loopback port.
 *
 * Used by `dcnr train --pnodes 0` (when no `--nats` is given), `dcnr up`, and every
 * integration test (through test/helpers/nats.ts). The server is started through a tiny
 * `sh` guard that kills it when our process dies, even by SIGKILL: the guard blocks on a
 * pipe from us, and a dead parent closes that pipe.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { issueUser, serverAuthConfig, type Authority } from '../runtime/security/authority.js';

export interface NatsServerOptions {
  /** JetStream store directory; created if missing. */
  storeDir: string;
  /** Port to listen on. @default a free loopback port */
  port?: number;
  /**
   * Largest message payload in bytes (`max_payload` in the config file; nats-server has
   * no flag for it). @default {@link DEFAULT_MAX_PAYLOAD} (8 MiB, not the server's own 1 MiB)
   */
  maxPayload?: number;
  /** Print the server's log lines to our stderr. @default false */
  verbose?: boolean;
  /** `server_name` (required in a JetStream cluster). */
  serverName?: string;
  /** Join a cluster: listen for routes on `port`, route to the others' ports. */
  cluster?: { name: string; port: number; routes: number[] };
  /** Auth on: operator mode with this network authority (runtime/security/authority.ts). */
  auth?: Authority;
}

export interface NatsServer {
  url: string;
  port: number;
  /** PID of nats-server itself (not of the guard). */
  pid: number;
  /** Its log file (in the store directory). */
  logFile: string;
  storeDir: string;
  /** Stop it (SIGTERM, then SIGKILL after 5 s) and wait for it to exit. */
  stop(): Promise<void>;
  /** SIGKILL it (a crash of the process: what it acknowledged is in the page cache, see README's known limits) and wait for it to exit. */
  kill(): Promise<void>;
  /** Start it again after `stop` or `kill`: same port, store and configuration. */
  restart(): Promise<NatsServer>;
}

/**
 * The `max_payload` of every nats-server DCNR starts: 8 MiB. The server's own default,
 * 1 MiB, is smaller than one message of wide-mlp at batch 256 (256×2048 f32 = 2 MiB);
 * 8 MiB is the largest value nats-server accepts without warning, and the same as
 * `Limits.maxTensorBytes` and the config `dcnr auth init` writes (docker-compose.yml).
 */
export const DEFAULT_MAX_PAYLOAD = 8 * 1024 * 1024;

/** A free TCP port on 127.0.0.1 (the OS picks; there is a small race, as with every such helper). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Path of the nats-server binary, or a clear error telling how to install it. */
export function natsServerBinary(): string {
  const found = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  const path = found.stdout.trim();
  if (found.status !== 0 || path === '') {
    throw new Error('nats-server not found on PATH: install it (Debian: `apt-get install -y nats-server`) or pass --nats URL');
  }
  return path;
}

// nats-server writes its log to a file, never to a pipe of ours: if we die, a pipe
// breaks, and a Go program writing to a broken stderr dies of SIGPIPE on the spot —
// in the middle of its shutdown, before its store is flushed (seen: metas of a
// SIGKILLed trainer's store came back stale after restart).
const GUARD = 'log="$1"; shift; nats-server "$@" >>"$log" 2>&1 </dev/null & p=$!; echo "$p"; read _ignored; kill "$p" 2>/dev/null; wait "$p"';

const PID_FILE = 'nats-server.pid';

/**
 * A store directory is one server's: a server of an earlier run (its parent SIGKILLed,
 * it is still flushing on its way out) must be gone before another opens the same
 * store, or the new one reads a store the old one is still writing — checkpoints and
 * mailbox acks from different moments (seen: `--resume` right after a SIGKILL ended
 * with other parameters). Waits up to 20 s for it, then refuses.
 */
async function waitForPreviousServer(storeDir: string): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(join(storeDir, PID_FILE), 'utf8').trim());
  } catch {
    return;
  }
  const alive = () => {
    try {
      return Number.isInteger(pid) && pid > 0 && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('nats-server');
    } catch {
      return false;
    }
  };
  const deadline = Date.now() + 20_000;
  while (alive()) {
    if (Date.now() > deadline) throw new Error(`nats-server pid ${pid} still uses the store ${storeDir}: stop it first (kill ${pid})`);
    await sleep(50);
  }
}

/** Start a nats-server with JetStream on 127.0.0.1 and wait until it accepts connections. */
// Long on purpose: one sequence — config file, spawn, readiness, stop/kill/restart —
// whose steps share the process handle and the port.
export async function startNatsServer(opts: NatsServerOptions): Promise<NatsServer> {
  natsServerBinary();
  mkdirSync(opts.storeDir, { recursive: true });
  await waitForPreviousServer(opts.storeDir);
  const port = opts.port ?? (await freePort());
  const config = join(opts.storeDir, 'nats-server.conf');
  writeFileSync(
    config,
    [
      `listen: "127.0.0.1:${port}"`,
      `max_payload: ${opts.maxPayload ?? DEFAULT_MAX_PAYLOAD}`,
      `jetstream { store_dir: ${JSON.stringify(opts.storeDir)} }`,
      ...(opts.serverName ? [`server_name: ${JSON.stringify(opts.serverName)}`] : []),
      ...(opts.auth ? await serverAuthConfig(opts.auth, join(opts.storeDir, 'jwt')) : []),
      ...(opts.cluster
        ? [
            `cluster {`,
            `  name: ${JSON.stringify(opts.cluster.name)}`,
            `  listen: "127.0.0.1:${opts.cluster.port}"`,
            `  routes: [${opts.cluster.routes.map((p) => JSON.stringify(`nats-route://127.0.0.1:${p}`)).join(', ')}]`,
            `}`,
          ]
        : []),
      '',
    ].join('\n'),
  );
  const logFile = join(opts.storeDir, 'nats-server.log');
  writeFileSync(logFile, '');
  const child: ChildProcess = spawn('sh', ['-c', GUARD, 'nats-guard', logFile, '-c', config], {
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  let logAt = 0;
  let log = '';
  const readLog = () => {
    const text = readFileSync(logFile, 'utf8');
    const fresh = text.slice(logAt);
    logAt = text.length;
    if (opts.verbose && fresh) process.stderr.write(fresh);
    log = (log + fresh).slice(-8192);
  };
  const pid = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n')) resolve(Number(line));
    });
    child.once('exit', (code) => reject(new Error(`nats-server guard exited (${code}) before starting: ${log}`)));
  });
  writeFileSync(join(opts.storeDir, PID_FILE), `${pid}\n`);
  // The guard keeps our end of stdin open for as long as we live.
  child.stdin!.on('error', () => {});
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });

  const deadline = Date.now() + 15_000;
  for (readLog(); !log.includes('Server is ready'); readLog()) {
    if (exited) throw new Error(`nats-server exited while starting:\n${log}`);
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGKILL');
      throw new Error(`nats-server did not become ready within 15 s:\n${log}`);
    }
    await sleep(20);
  }

  const kill = async (signal: NodeJS.Signals) => {
    if (exited) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
    const timer = setTimeout(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, 5000);
    child.stdin!.end();
    await gone;
    clearTimeout(timer);
  };
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    pid,
    logFile,
    storeDir: opts.storeDir,
    stop: () => kill('SIGTERM'),
    kill: () => kill('SIGKILL'),
    restart: () => startNatsServer({ ...opts, port }),
  };
}

export interface NatsCluster {
  servers: NatsServer[];
  urls: string[];
  /** Comma-separated: what `--nats` and `connect({ servers })` take. */
  url: string;
  stop(): Promise<void>;
}

/**
 * Wait until every server of a new cluster answers a JetStream API request. That the
 * meta group elected a leader is not enough: the leader logs it first, and a server
 * that has not yet heard of it drops JetStream requests unanswered (seen in CI: the
 * first `Kvm.create` on such a server timed out). Up to 30 s.
 */
async function untilJetStreamAnswers(servers: NatsServer[], auth?: Authority): Promise<void> {
  const creds = auth ? (await issueUser(auth, 'observer', 'cluster-probe')).creds : undefined;
  const deadline = Date.now() + 30_000;
  for (const s of servers) {
    for (let lastError = '';;) {
      if (Date.now() > deadline) throw new Error(`the ${servers.length}-node NATS cluster: ${s.url} gave no JetStream answer within 30 s (${lastError}; logs: ${servers.map((x) => x.logFile).join(', ')})`);
      let nc: NatsConnection | undefined;
      try {
        nc = await connect({ servers: s.url, ...(creds ? { authenticator: credsAuthenticator(new TextEncoder().encode(creds)) } : {}) });
        const info = (await nc.request('$JS.API.INFO', '', { timeout: 1000 })).json<{ error?: { description?: string } }>();
        if (!info.error) break;
        lastError = info.error.description ?? 'JetStream error';
      } catch (err) {
        lastError = (err as Error).message;
      } finally {
        await nc?.close().catch(() => {});
      }
      await sleep(100);
    }
  }
}

/**
 * A JetStream cluster of `nodes` servers on loopback (names `nats-1` …, stores under
 * `storeDir/nats-<i>`), ready when every server answers JetStream requests.
 */
export async function startNatsCluster(o: { storeDir: string; nodes?: number; auth?: Authority }): Promise<NatsCluster> {
  const n = o.nodes ?? 3;
  const clientPorts: number[] = [];
  const routePorts: number[] = [];
  for (let i = 0; i < n; i++) {
    clientPorts.push(await freePort());
    routePorts.push(await freePort());
  }
  const servers = await Promise.all(
    clientPorts.map((port, i) =>
      startNatsServer({
        storeDir: join(o.storeDir, `nats-${i + 1}`),
        port,
        serverName: `nats-${i + 1}`,
        cluster: { name: 'dcnr', port: routePorts[i], routes: routePorts.filter((_, j) => j !== i) },
        auth: o.auth,
      }),
    ),
  );
  const url = servers.map((s) => s.url).join(',');
  try {
    await untilJetStreamAnswers(servers, o.auth);
  } catch (err) {
    await Promise.all(servers.map((s) => s.stop()));
    throw err;
  }
  return { servers, urls: servers.map((s) => s.url), url, stop: async () => void (await Promise.all(servers.map((s) => s.stop()))) };
}
