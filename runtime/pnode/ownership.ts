/**
 * A PNode follows the ownership bucket: it hosts a VNode while its record names this
 * PNode (under the record's epoch), and releases it the moment a record names someone
 * else. Records are handled one at a time, in order.
 *
 * It refuses an assignment it cannot carry out — the deployment has no record, a VNode
 * type this process does not know, an index outside the model, or no room under
 * `maxVNodes` — with a `refused` event (the supervisor places the VNode elsewhere).
 * A value that is not an ownership record is said once and changes nothing: junk
 * written over a hosted VNode's record does not stop it.
 *
 * A record that names a `handover` (a planned move from a live owner: a drain, a
 * rebalance) is a handover: this PNode waits for that owner's `released` event for the
 * VNode — sent once its last checkpoint is committed — before it restores, so it starts
 * from all that was applied and replays nothing. It waits HANDOVER_WAIT_MS at most: an
 * owner that does not let go in time is fenced by the takeover write as in any move.
 */
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ActorHost, HostedDeployment } from '../actor-host.js';
import { readDeployment, subscribeClusterEvents, termRegression, type OwnershipRecord } from '../cluster-state.js';
import { isKnownType, resolveModel } from '../model.js';
import { Bucket, NAME_PATTERN, type ClusterEvent } from '../protocol.js';
import { parseEntry, parseOwnershipRecord, type RejectRecord } from '../records.js';
import type { InferenceResponder } from './inference.js';

/** How long a new owner waits for the handing-over owner's `released` event. */
export const HANDOVER_WAIT_MS = 3000;

export interface OwnershipOptions {
  nc: NatsConnection;
  id: string;
  owners: KV;
  deployments: KV;
  host: ActorHost;
  maxVNodes: number;
  emit(e: ClusterEvent): void;
  log(line: string): void;
  reject: RejectRecord;
  /** Answers inference requests for the VNodes this PNode owns (runtime/pnode/inference.ts). */
  inference?: InferenceResponder;
}

export interface Ownership {
  /** `<deployment>.<index>` of every VNode hosted now. */
  hosted(): string[];
  stop(): Promise<void>;
}

export async function followOwnership(o: OwnershipOptions): Promise<Ownership> {
  const { id, host } = o;
  const epochs = new Map<string, number>(); // hosted VNode → the epoch it runs under
  const generations = new Map<string, number>(); // hosted VNode → its deployment's generation
  const models = new Map<string, HostedDeployment>();
  const refuse = (vnode: string, error: string) => {
    o.log(`refusing ${vnode}: ${error}`);
    o.emit({ type: 'refused', vnode, pnode: id, error, at: Date.now() });
  };

  /**
   * The deployment as this process can host VNode `index` of it, cached per generation
   * (types this process does not know stand in with the record's shapes); a string says why not.
   */
  async function deploymentOf(name: string, index: number): Promise<HostedDeployment | string> {
    const record = await readDeployment(o.deployments, name, o.reject);
    if (!record) return `deployment ${name} has no valid record`;
    let d = models.get(name);
    if (!d || d.generation !== record.generation) {
      try {
        d = { model: resolveModel(record.spec, { shapes: record.shapes }), seed: record.seed, generation: record.generation, trainerKey: record.trainerKey, init: record.init };
      } catch (err) {
        return (err as Error).message; // e.g. unknown VNode type "x" (known: …) and no shapes to stand in with
      }
      models.set(name, d);
    }
    const v = d.model.vnodes[index];
    if (!v) return `deployment ${name} has ${d.model.vnodes.length} VNodes, no index ${index}`;
    if (!isKnownType(v)) return `unknown VNode type ${JSON.stringify(v.def.type)} in this process (start it with --types FILE)`;
    return d;
  }

  async function release(key: string, deployment: string, index: number, reason: string) {
    o.inference?.detach(deployment, index);
    const epoch = epochs.get(key);
    const generation = generations.get(key);
    epochs.delete(key);
    generations.delete(key);
    const ran = epoch !== undefined && generation !== undefined ? { epoch, generation } : {};
    const awaiting = handovers.get(key);
    if (awaiting) {
      // Moved on while this PNode still waited for the owner before it to let go: it never ran
      // the VNode, and says it released only once that owner did (or the wait ran out), so the
      // next owner's handover does not restore ahead of that owner's last checkpoint. Beside the
      // chain, like the wait itself.
      void awaiting.then(() => o.emit({ type: 'released', vnode: key, pnode: id, at: Date.now(), reason, ...ran }));
      return;
    }
    const revision = await host.release(deployment, index);
    o.emit({ type: 'released', vnode: key, pnode: id, at: Date.now(), reason, ...ran, ...(revision !== undefined ? { revision } : {}) });
  }

  // Releases heard from other PNodes (`<vnode>@<pnode>@<generation>` → the epoch it ran under), for
  // handovers. The generation keeps the release at the end of an earlier deployment of the
  // same name (epochs restart with each) from passing for the one awaited.
  const released = new Map<string, number>();
  /** Hosted VNodes whose new owner (this PNode) still waits for the previous owner's release. */
  const handovers = new Map<string, Promise<void>>();
  const releaseWaiters = new Set<() => void>();
  const events = subscribeClusterEvents(o.nc, (e, source) => {
    if (e.type !== 'released' || e.epoch === undefined || e.generation === undefined || source !== e.pnode) return;
    const k = `${e.vnode}@${e.pnode}@${e.generation}`;
    released.set(k, Math.max(released.get(k) ?? 0, e.epoch));
    if (released.size > 10_000) released.delete(released.keys().next().value!);
    for (const wake of releaseWaiters) wake();
  });
  /** Until `from` said it released `key` of `generation` under an epoch below `epoch`, or HANDOVER_WAIT_MS. */
  async function handedOver(key: string, from: string, generation: number, epoch: number): Promise<void> {
    const done = () => (released.get(`${key}@${from}@${generation}`) ?? epoch) < epoch;
    if (done()) return;
    await new Promise<void>((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        releaseWaiters.delete(check);
        resolve();
      };
      const check = () => done() && finish();
      const timer = setTimeout(() => {
        o.log(`${key}: ${from} did not release it within ${HANDOVER_WAIT_MS} ms: taking it over`);
        finish();
      }, HANDOVER_WAIT_MS);
      releaseWaiters.add(check);
    });
  }

  async function onRecord(key: string, record: OwnershipRecord | null) {
    const [deployment, indexText, extra] = key.split('.');
    const index = Number(indexText);
    if (extra !== undefined || !NAME_PATTERN.test(deployment ?? '') || !Number.isSafeInteger(index) || index < 0) {
      return o.reject(Bucket.Owners, key, 0, `not an ownership key (<deployment>.<index>)`);
    }
    const hostedEpoch = epochs.get(key);
    if (!record || record.pnode !== id) {
      if (hostedEpoch !== undefined) await release(key, deployment, index, record ? `now owned by ${record.pnode}` : 'unassigned');
      return;
    }
    if (hostedEpoch === record.epoch) return;
    if (hostedEpoch !== undefined) await host.release(deployment, index);
    else if (epochs.size >= o.maxVNodes) return refuse(key, `hosts ${epochs.size} VNodes, its maximum (--max-vnodes ${o.maxVNodes})`);
    const d = await deploymentOf(deployment, index);
    if (typeof d === 'string') return refuse(key, d);
    epochs.set(key, record.epoch);
    generations.set(key, d.generation);
    // Served from its versions while it is ours, trained or not (a finished VNode too).
    o.inference?.attach(d, index);
    // A handover is awaited beside the chain: records of other VNodes are not held up by it.
    const wait = record.handover && record.handover !== id ? handedOver(key, record.handover, d.generation, record.epoch) : undefined;
    if (wait) {
      handovers.set(key, wait);
      void wait.then(() => handovers.get(key) === wait && handovers.delete(key));
    } else handovers.delete(key);
    void (wait ?? Promise.resolve())
      .then(() => (epochs.get(key) === record.epoch ? host.host(d, index, record.epoch) : 'stopped'))
      .then((exit) => {
        if (epochs.get(key) === record.epoch && exit !== 'done') {
          epochs.delete(key);
          generations.delete(key);
          o.inference?.detach(deployment, index);
        }
        if (exit === 'done') o.log(`${key} finished its schedule`);
      });
  }

  const watcher = await o.owners.watch();
  /** The last record taken per key: a later one of a lower supervisor term is refused (supervisor/leadership.ts). */
  const taken = new Map<string, OwnershipRecord>();
  let chain = Promise.resolve();
  void (async () => {
    for await (const e of watcher) {
      // Junk (not an ownership record) is said once and ignored; a delete is "unassigned".
      if (e.operation === 'PUT' && e.length > 0) {
        const record = parseEntry(e, parseOwnershipRecord, o.reject);
        if (record === null) continue;
        const regression = termRegression(taken.get(e.key), record);
        if (regression) {
          o.reject(Bucket.Owners, e.key, e.revision, regression);
          continue;
        }
        taken.set(e.key, record);
        chain = chain.then(() => onRecord(e.key, record));
      } else {
        chain = chain.then(() => onRecord(e.key, null));
      }
      chain = chain.catch((err) => o.log(`ownership update ${e.key} failed: ${err}`));
    }
  })();

  return {
    hosted: () => [...epochs.keys()].sort(),
    async stop() {
      watcher.stop();
      events.unsubscribe();
      await chain;
    },
  };
}
