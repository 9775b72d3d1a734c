/**
 * What the dashboard pushes: cluster events as they happen (and a short history for a
 * new page), the status and the deployment list re-read every `everyMs` and pushed when
 * they change, and every deployment's losses (losses.ts).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { collectStatus, type StatusReport } from '../cluster/status.js';
import { subscribeClusterEvents } from '../runtime/cluster-state.js';
import type { ClusterEvent } from '../runtime/protocol.js';
import { listDeployments, type DeploymentSummary } from './deployments.js';
import { createLossFollower } from './losses.js';
import type { SseHub } from './sse.js';

export interface Feeds {
  /** What a new `/api/events` client gets first. */
  greet(send: (event: string, data: unknown) => void): void;
  stop(): void;
}

export function startFeeds(nc: NatsConnection, hub: SseHub, everyMs: number): Feeds {
  const recentEvents: ClusterEvent[] = [];
  const events = subscribeClusterEvents(nc, (e) => {
    // The history a new page gets keeps what the timeline shows: activations and
    // passivations come by the thousand (bench scale) and would push deaths out.
    if (e.type !== 'activated' && e.type !== 'passivated') {
      recentEvents.push(e);
      if (recentEvents.length > 500) recentEvents.shift();
    }
    hub.broadcast('cluster', e);
  });
  const losses = createLossFollower(
    nc,
    (deployment, points) => hub.broadcast('loss', { deployment, points }),
    (deployment) => hub.broadcast('loss-reset', { deployment }),
  );

  let status: StatusReport | undefined;
  let deployments: DeploymentSummary[] = [];
  let lastStatus = '';
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
        hub.broadcast('status', status);
      }
      deployments = await listDeployments(nc);
      losses.follow(deployments);
      const deps = JSON.stringify(deployments);
      if (deps !== lastDeployments) {
        lastDeployments = deps;
        hub.broadcast('deployments', deployments);
      }
    } catch {
      // NATS away for a moment: keep the last snapshot, try again next tick
    } finally {
      refreshing = false;
    }
  };
  const timer = setInterval(() => void refresh(), everyMs);
  void refresh();
  return {
    greet(send) {
      // No snapshot yet: the first successful refresh pushes one to every client.
      if (status) send('status', status);
      send('deployments', deployments);
      send('history', { events: recentEvents, losses: losses.snapshot() });
    },
    stop() {
      clearInterval(timer);
      events.unsubscribe();
      losses.stop();
    },
  };
}
