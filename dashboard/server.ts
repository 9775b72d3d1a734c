/**
 * The live dashboard: a small HTTP server (node:http, no framework) serving a
 * plain-JS page, `GET /api/status` (exactly `dcnr status --json`), `GET /api/deployments`
 * and `GET /api/events` — Server-Sent Events carrying status snapshots, cluster events
 * and per-step losses as they happen. Served by `dcnr up` and by `dcnr supervisor
 * --dashboard-port` (what docker-compose runs). Beside it: sse.ts (the event-stream
 * clients), feeds.ts (what is pushed), deployments.ts, losses.ts.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { NatsConnection } from '@nats-io/transport-node';
import { collectStatus } from '../cluster/status.js';
import { listDeployments } from './deployments.js';
import { startFeeds } from './feeds.js';
import { createSseHub } from './sse.js';

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

/**
 * Starts the dashboard's HTTP server on `host:port` (port 0 = any free port): its feeds
 * push cluster events, status changes and losses to every `/api/events` client.
 * Rejects with a clear message if the port is taken (and leaves nothing running).
 */
export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const { nc } = o;
  const hub = createSseHub();
  const feeds = startFeeds(nc, hub, o.statusEveryMs ?? 500);
  const server = createServer((req, res) => {
    route(nc, req, res, (r, s) => hub.add(r, s, feeds.greet)).catch((err) => {
      if (!res.headersSent) res.writeHead(503, { 'content-type': 'text/plain' });
      res.end(`dashboard: ${(err as Error).message}\n`);
    });
  });
  const host = o.host ?? '127.0.0.1';
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new Error(err.code === 'EADDRINUSE' ? `dashboard: port ${o.port} on ${host} is in use (choose another with --dashboard-port, 0 = any)` : `dashboard: ${err.message}`)),
      );
      server.listen(o.port, host, () => resolve());
    });
  } catch (err) {
    // A caller that goes on without a dashboard keeps no timers or subscriptions of it.
    feeds.stop();
    hub.close();
    throw err;
  }
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  const shown = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}/`,
    async close() {
      feeds.stop();
      hub.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** GET/HEAD only: the API, the event stream, the static page; a one-line reason for anything else. */
async function route(nc: NatsConnection, req: IncomingMessage, res: ServerResponse, events: (req: IncomingMessage, res: ServerResponse) => void): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  const json = (data: unknown) => res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(data));
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end(`${req.method} not allowed: the dashboard is read-only\n`);
  } else if (path === '/api/status') {
    json(await collectStatus(nc));
  } else if (path === '/api/deployments') {
    json(await listDeployments(nc));
  } else if (path === '/api/events') {
    events(req, res);
  } else if (STATIC[path]) {
    const file = STATIC[path];
    res.writeHead(200, { 'content-type': TYPES[file.split('.').pop()!], 'cache-control': 'no-cache' }).end(readFileSync(PUBLIC + file));
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' }).end(`${path}: not found (try / or /api/status)\n`);
  }
}
