/**
 * The live dashboard: a small HTTP server (node:http, no framework) serving a
 * plain-JS page, `GET /api/status` (exactly `dcnr status --json`), `GET /api/deployments`
 * and `GET /api/events` — Server-Sent Events carrying status snapshots, cluster events
 * and per-step losses as they happen. Served by `dcnr up` and by `dcnr supervisor
 * --dashboard-port` (what docker-compose runs).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { NatsConnection } from '@nats-io/transport-node';
import { collectStatus, type StatusReport } from '../cli/status.js';
import { openBuckets, subscribeClusterEvents, type DeploymentRecord } from '../runtime/cluster-state.js';
import type { ClusterEvent } from '../runtime/protocol.js';
import { createLossFollower } from './losses.js';

/** Where the dashboard reads from and listens. */
export interface DashboardOptions {
  nc: NatsConnection;
  /** 0 = any free port. */
  port: number;
  /** @default '127.0.0.1' */
  host?: string;
  /** How often status snapshots are pushed (when changed). @default 500 */
  statusEveryMs?: number;
}

/** A running dashboard: its URL (a loopback one when bound to 0.0.0.0) and how to stop it. */
export interface Dashboard {
  url: string;
  close(): Promise<void>;
}

const PUBLIC = fileURLToPath(new URL('./public/', import.meta.url));
const STATIC: Record<string, string> = {
  '/': 'index.html',
  '/index.html': 'index.html',
  '/app.js': 'app.js',
  '/style.css': 'style.css',
};
const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };

/** Deployments and their VNode types, for drawing pipelines. */
export async function listDeployments(nc: NatsConnection): Promise<Array<{ name: string; vnodes: string[]; steps: number; batch: number; createdAt: string }>> {
  const { deployments } = await openBuckets(nc);
  const out = [];
  for await (const key of await deployments.keys()) {
    const e = await deployments.get(key);
    if (!e || e.operation !== 'PUT' || e.length === 0) continue;
    const r = e.json<DeploymentRecord>();
    out.push({ name: r.spec.name, vnodes: r.spec.vnodes.map((v) => v.type), steps: r.steps, batch: r.batch, createdAt: r.createdAt });
  }
  return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

/**
 * Starts the dashboard's HTTP server on `host:port` (port 0 = any free port). It keeps
 * a subscription on every ClusterEvent and follows every deployment's losses
 * (dashboard/losses.ts), pushes them to each
 * `/api/events` client as they arrive, and re-reads the status every `statusEveryMs`,
 * pushing it when it changed. Rejects with a clear message if the port is taken.
 */
export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const { nc } = o;
  const clients = new Set<ServerResponse>();
  const recentEvents: ClusterEvent[] = [];
  let lastStatus = '';

  const send = (res: ServerResponse, event: string, data: unknown) => {
    // A client that hung up between two pushes is dropped, never written to.
    if (res.destroyed || res.writableEnded) return void clients.delete(res);
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const broadcast = (event: string, data: unknown) => {
    for (const c of clients) send(c, event, data);
  };

  const events = subscribeClusterEvents(nc, (e) => {
    // The history a new page gets keeps what the timeline shows: activations and
    // passivations come by the thousand (bench scale) and would push deaths out.
    if (e.type !== 'activated' && e.type !== 'passivated') {
      recentEvents.push(e);
      if (recentEvents.length > 500) recentEvents.shift();
    }
    broadcast('cluster', e);
  });
  const losses = createLossFollower(
    nc,
    (deployment, points) => broadcast('loss', { deployment, points }),
    (deployment) => broadcast('loss-reset', { deployment }),
  );

  let status: StatusReport | undefined;
  let deployments: Awaited<ReturnType<typeof listDeployments>> = [];
  let lastDeployments = '';
  let refreshing = false;
  const refresh = async () => {
    if (refreshing) return; // a slow NATS: never two reads piling up
    refreshing = true;
    try {
      status = await collectStatus(nc);
      const text = JSON.stringify({ ...status, supervisor: status.supervisor && { pid: status.supervisor.pid } });
      if (text !== lastStatus) {
        lastStatus = text;
        broadcast('status', status);
      }
      deployments = await listDeployments(nc);
      losses.follow(deployments);
      const deps = JSON.stringify(deployments);
      if (deps !== lastDeployments) {
        lastDeployments = deps;
        broadcast('deployments', deployments);
      }
    } catch {
      // NATS away for a moment: keep the last snapshot, try again next tick
    } finally {
      refreshing = false;
    }
  };
  const timer = setInterval(() => void refresh(), o.statusEveryMs ?? 500);
  // A comment line now and then keeps idle connections open through proxies.
  const keepAlive = setInterval(() => {
    for (const c of clients) if (!c.destroyed && !c.writableEnded) c.write(': keep-alive\n\n');
  }, 15_000);

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end(`${req.method} not allowed: the dashboard is read-only\n`);
      return;
    }
    if (path === '/api/status') {
      const s = await collectStatus(nc);
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(s));
      return;
    }
    if (path === '/api/deployments') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(await listDeployments(nc)));
      return;
    }
    if (path === '/api/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write('retry: 1000\n\n');
      clients.add(res);
      req.on('close', () => clients.delete(res));
      res.on('close', () => clients.delete(res));
      res.on('error', () => clients.delete(res)); // a reset socket: that client is gone, the server goes on
      // No snapshot yet: the first successful refresh pushes one to every client.
      if (status) send(res, 'status', status);
      send(res, 'deployments', deployments);
      send(res, 'history', { events: recentEvents, losses: losses.snapshot() });
      return;
    }
    const file = STATIC[path];
    if (!file) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`${path}: not found (try / or /api/status)\n`);
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[file.split('.').pop()!], 'cache-control': 'no-cache' }).end(readFileSync(PUBLIC + file));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) res.writeHead(503, { 'content-type': 'text/plain' });
      res.end(`dashboard: ${(err as Error).message}\n`);
    });
  });
  const host = o.host ?? '127.0.0.1';
  const stopFeeds = () => {
    clearInterval(timer);
    clearInterval(keepAlive);
    events.unsubscribe();
    losses.stop();
  };
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new Error(err.code === 'EADDRINUSE' ? `dashboard: port ${o.port} on ${host} is in use (choose another with --dashboard-port, 0 = any)` : `dashboard: ${err.message}`)),
      );
      server.listen(o.port, host, () => resolve());
    });
  } catch (err) {
    stopFeeds(); // a caller that goes on without a dashboard keeps no timers or subscriptions of it
    throw err;
  }
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  void refresh();
  const shown = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}/`,
    async close() {
      stopFeeds();
      for (const c of clients) c.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
