/**
 * A PNode's heartbeats on `dcnr.hb.<id>`: what it hosts, its counters and health,
 * every `periodMs`. Liveness and progress are kept apart:
 *
 * - With `link` (how `dcnr pnode` runs), the beats go out from a worker thread on its
 *   own connection (heartbeat-thread.mjs), fed the main thread's latest heartbeat every
 *   period. Measured before: activating a 16M-parameter layer blocked a PNode's event
 *   loop 1.3–3.5 s, main-thread beats stopped for as long, and the 1 s detector declared
 *   healthy PNodes dead (8 false deaths per `dcnr bench --only memory` run, the model's
 *   VNodes cascading onto one PNode). A second connection on the main thread did not
 *   help: the sender itself was blocked.
 * - A main loop held up longer than `hangMs` is taken for hung: the thread goes silent
 *   and the failure detector declares the PNode dead as for a crash. A shorter hold-up
 *   is what the risk model's loop-lag signal is for (the main thread's own p99, in the
 *   heartbeat it posts once it runs again).
 * - Without `link` (PNodes started in-process, by tests) the main thread publishes.
 */
import { Worker } from 'node:worker_threads';
import type { NatsConnection } from '@nats-io/transport-node';
import { Subject, type Heartbeat } from '../protocol.js';

/** Where the heartbeat thread connects: the PNode's own server list and credentials. */
export interface HeartbeatLink {
  servers: string[];
  /** The `.creds` file's text, when the PNode connects with credentials. */
  creds?: string;
}

export interface HeartbeatOptions {
  nc: NatsConnection;
  id: string;
  periodMs: number;
  /** Main loop silent this long → beats stop. @default 10000 */
  hangMs?: number;
  link?: HeartbeatLink;
  heartbeat: () => Heartbeat;
  log: (line: string, level?: 'info' | 'warn') => void;
}

export interface Heartbeats {
  stop(): Promise<void>;
}

export const DEFAULT_HANG_MS = 10_000;

export async function startHeartbeats(o: HeartbeatOptions): Promise<Heartbeats> {
  const subject = Subject.heartbeat(o.id);
  let thread = o.link ? await startThread(o, o.link, subject) : undefined;
  const beat = () => {
    const hb = JSON.stringify(o.heartbeat());
    if (thread) thread.postMessage({ type: 'beat', heartbeat: hb });
    else o.nc.publish(subject, hb);
  };
  thread?.once('exit', (code) => {
    if (!thread) return; // stopped
    thread = undefined;
    o.log(`heartbeat thread exited (code ${code}): heartbeats go out from the main thread`, 'warn');
  });
  beat();
  const timer = setInterval(beat, o.periodMs);
  return {
    async stop() {
      clearInterval(timer);
      const t = thread;
      thread = undefined;
      if (!t) return;
      const exited = new Promise((r) => t.once('exit', r));
      t.postMessage({ type: 'stop' });
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000).unref())]);
      await t.terminate();
    },
  };
}

/** The thread, once its connection is up; a clear error if it cannot connect. */
async function startThread(o: HeartbeatOptions, link: HeartbeatLink, subject: string): Promise<Worker> {
  const worker = new Worker(new URL('./heartbeat-thread.mjs', import.meta.url), {
    workerData: { servers: link.servers, creds: link.creds, name: `dcnr-${o.id}-heartbeat`, subject, periodMs: o.periodMs, hangMs: o.hangMs ?? DEFAULT_HANG_MS },
  });
  worker.unref();
  await new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', (err) => reject(new Error(`the heartbeat thread of ${o.id} could not connect to ${link.servers.join(',')}: ${err.message}`)));
    worker.once('exit', (code) => reject(new Error(`the heartbeat thread of ${o.id} exited (code ${code}) before connecting`)));
  });
  worker.on('error', (err) => o.log(`heartbeat thread: ${err.message}`, 'warn'));
  return worker;
}
