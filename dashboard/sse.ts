/**
 * Server-Sent-Events clients of `/api/events`: added on connect, dropped the moment
 * they hang up (never written to after), kept open through proxies by a comment line
 * every 15 s.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface SseHub {
  /** Answer `req` as an event stream and keep it; `greet` sends its first events. */
  add(req: IncomingMessage, res: ServerResponse, greet: (send: (event: string, data: unknown) => void) => void): void;
  broadcast(event: string, data: unknown): void;
  close(): void;
}

export function createSseHub(keepAliveMs = 15_000): SseHub {
  const clients = new Set<ServerResponse>();
  const send = (res: ServerResponse, event: string, data: unknown) => {
    // A client that hung up between two pushes is dropped, never written to.
    if (res.destroyed || res.writableEnded) return void clients.delete(res);
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const keepAlive = setInterval(() => {
    for (const c of clients) if (!c.destroyed && !c.writableEnded) c.write(': keep-alive\n\n');
  }, keepAliveMs);
  return {
    add(req, res, greet) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write('retry: 1000\n\n');
      clients.add(res);
      req.on('close', () => clients.delete(res));
      res.on('close', () => clients.delete(res));
      res.on('error', () => clients.delete(res)); // a reset socket: that client is gone, the server goes on
      greet((event, data) => send(res, event, data));
    },
    broadcast(event, data) {
      for (const c of clients) send(c, event, data);
    },
    close() {
      clearInterval(keepAlive);
      for (const c of clients) c.end();
      clients.clear();
    },
  };
}
