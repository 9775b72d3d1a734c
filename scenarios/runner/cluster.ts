/**
 * The private cluster a scenario runs on: its own nats-server (or a 3-node JetStream
 * cluster), a supervisor and N PNodes as `dcnr` child processes (cluster/local-cluster.ts),
 * optionally each PNode behind a TCP proxy. It records every child's exit so the
 * runner can tell a fault's kill from a crash.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { startLocalCluster, type LocalCluster } from '../../cluster/local-cluster.js';
import { authDefault, ensureAuthority, type Authority } from '../../runtime/security/authority.js';
import { startNatsCluster, startNatsServer, type NatsServer } from '../../cluster/nats-server.js';
import type { ClusterNeeds } from '../faults/types.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

export interface ChildExit {
  name: string;
  code: number | null;
  signal: string | null;
  /** A fault announced it (kill, stop): not a crash. */
  expected: boolean;
  at: number;
}

export interface ScenarioCluster {
  /** What clients connect to (comma-separated for a NATS cluster). */
  url: string;
  /** The nats-server(s); index 0 for a single server. Replaced in place on restart. */
  nats: NatsServer[];
  /** Child processes by name: `supervisor`, `pnode-1` … */
  procs: Map<string, ChildProcess>;
  /** The network authority when auth is on. */
  authority: Authority | undefined;
  /** Proxies by PNode name (when the scenario needs them). */
  proxies: Map<string, TcpProxy>;
  exits: ChildExit[];
  /** Announce that `name` is about to be stopped or killed on purpose. */
  expectExit(name: string): void;
  /** Start a PNode (next free name unless given); returns its name. */
  spawnPNode(name?: string): Promise<string>;
  spawnSupervisor(): void;
  /**
   * Stop nats-server `i` — gracefully (`stop`: SIGTERM, its store flushed) or as a crash
   * (`kill`: SIGKILL) — wait `downMs`, start it again (same port, same store).
   */
  restartNats(i: number, downMs: number, how?: 'stop' | 'kill'): Promise<void>;
  stop(): Promise<void>;
}

export interface ScenarioClusterOptions {
  pnodes: number;
  dir: string;
  detectMs: number;
  needs: ClusterNeeds;
}

export async function startScenarioCluster(o: ScenarioClusterOptions): Promise<ScenarioCluster> {
  const nats: NatsServer[] = [];
  // Auth on, as in `dcnr up`: every child connects with its role's credentials.
  const authority = authDefault() ? ensureAuthority(join(o.dir, 'auth')) : undefined;
  let natsCluster: Awaited<ReturnType<typeof startNatsCluster>> | undefined;
  if (o.needs.natsCluster) {
    natsCluster = await startNatsCluster({ storeDir: join(o.dir, 'nats'), nodes: 3, auth: authority });
    nats.push(...natsCluster.servers);
  } else {
    nats.push(await startNatsServer({ storeDir: join(o.dir, 'nats'), auth: authority }));
  }
  const url = natsCluster ? natsCluster.url : nats[0].url;
  const proxies = new Map<string, TcpProxy>();
  const exits: ChildExit[] = [];
  const expected = new Set<string>();
  let next = o.pnodes + 1;

  const env: Record<string, string> = {};
  // Every creator of a bucket or stream must agree on its replicas (runtime/replicas.ts):
  // the children, and this process too — its trainer deploys, and its first status read
  // may create the buckets before the supervisor does (it made them R1 here, once).
  const savedReplicas = process.env.DCNR_REPLICAS;
  if (o.needs.natsCluster) env.DCNR_REPLICAS = process.env.DCNR_REPLICAS = '3';
  const restoreReplicas = () => {
    if (!o.needs.natsCluster) return;
    if (savedReplicas === undefined) delete process.env.DCNR_REPLICAS;
    else process.env.DCNR_REPLICAS = savedReplicas;
  };
  if (o.needs.faultControl) env.DCNR_FAULT_INJECTION = '1';
  if (o.needs.auditShare !== undefined) env.DCNR_AUDIT_SHARE = String(o.needs.auditShare);
  const local: LocalCluster = await startLocalCluster({
    pnodes: 0,
    nats: url,
    storeDir: o.dir,
    authority,
    detectMs: o.detectMs,
    supervisors: o.needs.supervisors,
    env,
    pnodeUrl: o.needs.proxy ? (name) => proxies.get(name)?.url ?? url : undefined,
  });
  const watch = (name: string, child: ChildProcess) =>
    child.once('exit', (code, signal) => exits.push({ name, code, signal, expected: expected.has(name), at: Date.now() }));
  for (const [name, child] of local.procs) if (name.startsWith('supervisor')) watch(name, child);

  const cluster: ScenarioCluster = {
    url,
    nats,
    procs: local.procs,
    authority,
    proxies,
    exits,
    expectExit: (name) => void expected.add(name),
    async spawnPNode(name) {
      const id = name ?? `pnode-${next++}`;
      expected.delete(id);
      // A proxy per PNode, and (for a restarted PNode) the same one again.
      if (o.needs.proxy && !proxies.has(id)) proxies.set(id, await startTcpProxy(natsCluster ? natsCluster.servers[0].url : nats[0].url));
      watch(id, await local.spawnPNode(id));
      return id;
    },
    spawnSupervisor() {
      expected.delete('supervisor');
      watch('supervisor', local.spawnSupervisor());
    },
    async restartNats(i, downMs, how = 'stop') {
      const old = nats[i];
      await (how === 'kill' ? old.kill() : old.stop());
      await new Promise((r) => setTimeout(r, downMs));
      nats[i] = await old.restart();
    },
    async stop() {
      for (const name of local.procs.keys()) expected.add(name);
      await local.stop();
      for (const p of proxies.values()) await p.close();
      // The servers as they are now: a fault may have replaced some by restarted ones.
      await Promise.all(nats.map((s) => s.stop()));
      restoreReplicas();
    },
  };
  for (let i = 1; i <= o.pnodes; i++) await cluster.spawnPNode(`pnode-${i}`);
  return cluster;
}
