// A PNode's heartbeat sender, on its own thread and its own NATS connection
// (runtime/pnode/heartbeat.ts starts it). Plain JS: a worker thread does not inherit
// the TypeScript loader the main thread registered at run time.
//
// The main thread posts its latest heartbeat (JSON) every period; this thread publishes
// the latest one every period, stamped now, as long as the main thread has posted
// within `hangMs`. So a main loop held up by its own work (activating a layer of
// millions of parameters blocks it for seconds) is not taken for a dead PNode, and a
// hung one is: past `hangMs` this thread goes silent and the failure detector sees it.
// A stopped or killed process stops this thread with it.
import { parentPort, workerData } from 'node:worker_threads';
import { connect, credsAuthenticator } from '@nats-io/transport-node';

const { servers, creds, name, subject, periodMs, hangMs } = workerData;
const nc = await connect({
  servers,
  name,
  maxReconnectAttempts: -1,
  reconnectTimeWait: 250,
  noAsyncTraces: true,
  ...(creds ? { authenticator: credsAuthenticator(new TextEncoder().encode(creds)) } : {}),
});
let latest;
let postedAt = 0;
const beat = () => {
  if (!latest || Date.now() - postedAt > hangMs) return;
  latest.at = Date.now();
  nc.publish(subject, JSON.stringify(latest));
};
parentPort.on('message', (m) => {
  if (m.type === 'beat') {
    const first = latest === undefined;
    latest = JSON.parse(m.heartbeat);
    postedAt = Date.now();
    if (first) beat();
  } else if (m.type === 'stop') {
    clearInterval(timer);
    void nc.close().finally(() => parentPort.close());
  }
});
const timer = setInterval(beat, periodMs);
parentPort.postMessage({ type: 'ready' });
