/**
 * A loopback TCP proxy the scenario runner controls: the `partition` fault puts one
 * between a PNode and NATS and cuts it. While cut, every connection through it is
 * reset and new ones are refused at once (the PNode's client keeps retrying), while
 * the PNode process itself keeps running — it just cannot reach anyone.
 */
import { createServer, connect, type Socket } from 'node:net';

export interface TcpProxy {
  /** `nats://127.0.0.1:<port>` — what the proxied client connects to. */
  url: string;
  port: number;
  readonly isCut: boolean;
  cut(): void;
  heal(): void;
  close(): Promise<void>;
}

/** Proxy 127.0.0.1:<free port> → `target` (`host:port` or `nats://host:port`). */
export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const m = /^(?:nats:\/\/)?([^:/]+):(\d+)$/.exec(target.trim());
  if (!m) throw new Error(`tcp proxy: target must be host:port or nats://host:port, got ${JSON.stringify(target)}`);
  const [, host, portText] = m;
  const sockets = new Set<Socket>();
  let isCut = false;
  const server = createServer((client) => {
    if (isCut) return void client.destroy();
    const upstream = connect(Number(portText), host);
    for (const s of [client, upstream]) {
      // Small request/reply frames: Nagle + delayed ACKs would add ~40 ms per round trip.
      s.setNoDelay(true);
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : 0);
    });
  });
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    get isCut() {
      return isCut;
    },
    cut() {
      isCut = true;
      for (const s of sockets) s.destroy();
    },
    heal() {
      isCut = false;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
