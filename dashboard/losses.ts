/**
 * The dashboard's loss curves: one ordered JetStream consumer per deployment reads its
 * metrics stream (`Stream.metrics(dep)`) from the first record, so a page opened — or
 * a dashboard started — halfway through a run still draws the whole curve, and then
 * follows new steps live. Records re-sent after a crash or a move carry a seq already
 * seen and are dropped (the trainer does the same).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, type ConsumerMessages } from '@nats-io/jetstream';
import { Stream, Subject } from '../runtime/protocol.js';
import { parseStepMetric } from '../runtime/records.js';

/** One deployment's points, `[seq, loss]`, in arrival order (seq order, give or take a resend). */
export type LossPoints = Array<[number, number]>;

export interface LossFollower {
  /**
   * Follow exactly these deployments (name → createdAt). A new createdAt under an old
   * name is a fresh run: its curve starts over.
   */
  follow(deployments: Array<{ name: string; createdAt: string }>): void;
  /** Every point kept so far, per deployment. */
  snapshot(): Record<string, LossPoints>;
  stop(): void;
}

/** Points kept per deployment; beyond it the oldest go (the page thins them out anyway). */
const MAX_POINTS = 200_000;
/** New points are handed on in batches: a replayed history is a few events, not thousands. */
const FLUSH_MS = 250;

/**
 * `onPoints(dep, points)` gets new points (batched); `onReset(dep)` says a deployment's
 * curve starts over (a fresh run under the same name, or the deployment is gone).
 */
export function createLossFollower(nc: NatsConnection, onPoints: (deployment: string, points: LossPoints) => void, onReset: (deployment: string) => void): LossFollower {
  const js = jetstream(nc);
  const followed = new Map<string, { createdAt: string; seen: Set<number>; points: LossPoints; pending: LossPoints; messages?: ConsumerMessages; stopped: boolean }>();

  const start = (name: string, createdAt: string) => {
    const f = { createdAt, seen: new Set<number>(), points: [] as LossPoints, pending: [] as LossPoints, messages: undefined as ConsumerMessages | undefined, stopped: false };
    followed.set(name, f);
    void (async () => {
      try {
        // No consumer name = an ordered consumer from the stream's first record. The filter
        // is what lets an observer's credentials create it (runtime/security/roles.ts).
        f.messages = await (await js.consumers.get(Stream.metrics(name), { filter_subjects: Subject.metrics(name) })).consume({ expires: 2000 });
        if (f.stopped) return f.messages.stop();
        for await (const m of f.messages) {
          const metric = parseStepMetric(m.data);
          if (!metric || f.seen.has(metric.seq)) continue; // not a metric record, or a resend
          f.seen.add(metric.seq);
          f.points.push([metric.seq, metric.loss]);
          f.pending.push([metric.seq, metric.loss]);
          if (f.points.length > MAX_POINTS) f.seen.delete(f.points.shift()![0]);
        }
      } catch {
        // The stream is not there yet (deployment record written first), or NATS went
        // away: forget this reader; the next follow() starts a new one.
      }
      if (followed.get(name) === f && !f.stopped) {
        followed.delete(name);
        if (f.points.length) onReset(name); // the next reader replays the stream from its start
      }
    })();
  };

  const flush = setInterval(() => {
    for (const [name, f] of followed) {
      if (f.pending.length === 0) continue;
      const points = f.pending;
      f.pending = [];
      onPoints(name, points);
    }
  }, FLUSH_MS);

  const drop = (name: string) => {
    const f = followed.get(name);
    if (!f) return;
    f.stopped = true;
    f.messages?.stop();
    followed.delete(name);
    onReset(name);
  };

  return {
    follow(deployments) {
      const wanted = new Map(deployments.map((d) => [d.name, d.createdAt]));
      for (const [name, f] of followed) if (wanted.get(name) !== f.createdAt) drop(name);
      for (const [name, createdAt] of wanted) {
        const f = followed.get(name);
        if (!f) start(name, createdAt);
      }
    },
    snapshot() {
      return Object.fromEntries([...followed].map(([name, f]) => [name, f.points.slice(0, f.points.length - f.pending.length)]));
    },
    stop() {
      clearInterval(flush);
      for (const f of followed.values()) {
        f.stopped = true;
        f.messages?.stop();
      }
      followed.clear();
    },
  };
}
