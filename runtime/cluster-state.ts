/**
 * The KV buckets every DCNR process shares, and the records kept in them besides
 * VNode state: deployments and ownership records.
 */
import { replicas } from './replicas.js';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import { Bucket, epochKey, ownerKey, Subject, type ClusterEvent } from './protocol.js';
import { parseClusterEvent, parseDeploymentRecord, parseOwnershipRecord, readRecord, type RejectRecord } from './records.js';
import type { InitialParameters } from './initial-parameters.js';
import type { ModelSpec, VNodeShapes } from './model.js';

export interface Buckets {
  state: KV;
  owners: KV;
  deployments: KV;
  members: KV;
  epochs: KV;
}

/**
 * Create (or bind to) the buckets. History 1: old values are garbage, CAS needs only the
 * last revision. Credentials that may not create streams (a PNode's, an observer's) bind
 * to the buckets the supervisor made, waiting up to `waitMs` for them to exist.
 */
export async function openBuckets(nc: NatsConnection, waitMs = 60_000): Promise<Buckets> {
  const kvm = new Kvm(nc);
  const open = async (name: string): Promise<KV> => {
    try {
      // Replicated: reads go to the stream leader. A direct get may be answered by any
      // replica, and one that is catching up after a restart returns an older revision
      // (seen in kill-nats-node: a PNode restored a checkpoint older than its mailbox).
      return await kvm.create(name, { history: 1, replicas: replicas(), ...(replicas() > 1 ? { allow_direct: false } : {}) });
    } catch (err) {
      if (!/permissions violation/i.test((err as Error).message)) throw err;
    }
    const deadline = Date.now() + waitMs;
    for (;;) {
      try {
        return await kvm.open(name);
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`KV bucket ${name} does not exist and these credentials may not create it: start the supervisor first (${(err as Error).message})`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  };
  const [state, owners, deployments, members, epochs] = await Promise.all([
    open(Bucket.State),
    open(Bucket.Owners),
    open(Bucket.Deployments),
    open(Bucket.Members),
    open(Bucket.Epochs),
  ]);
  return { state, owners, deployments, members, epochs };
}

/** What is deployed under a name: the model and the training run's fixed arguments. */
export interface DeploymentRecord {
  spec: ModelSpec;
  seed: number;
  batch: number;
  steps: number;
  createdAt: string;
  /** Every VNode's features in and out, as the deploying process resolved them: lets a PNode that knows only some of the types host its VNodes. */
  shapes?: VNodeShapes;
  /**
   * Set when one process hosts every VNode itself (`dcnr train --pnodes 0`): the
   * supervisor then leaves the deployment alone instead of placing it on PNodes.
   */
  hostedBy?: 'local';
  /** The key of the trainer that deployed it: its feeds must carry its signature (auth on). */
  trainerKey?: string;
  /** Set when the run starts from given parameters (`dcnr train --init FILE`) instead of its types' init: runtime/initial-parameters.ts. */
  init?: InitialParameters;
}

/** Who owned a VNode at one epoch (`Bucket.Epochs`). */
export interface EpochRecord {
  pnode: string;
  publicKey: string;
}

/**
 * A deployment record and its generation: the KV revision it was written at. Revisions
 * only grow, on every machine's clock alike, so a later deployment under the same name
 * always has the higher generation.
 */
export async function readDeployment(kv: KV, name: string, reject?: RejectRecord): Promise<(DeploymentRecord & { generation: number }) | null> {
  const r = await readRecord(kv, name, parseDeploymentRecord, reject);
  return r && { ...r.value, generation: r.revision };
}

/** Write a deployment record; returns its generation. */
export async function writeDeployment(kv: KV, record: DeploymentRecord): Promise<number> {
  return kv.put(record.spec.name, JSON.stringify(record));
}

/** Who may run a VNode, under which epoch (invariant 1). */
export interface OwnershipRecord {
  pnode: string;
  epoch: number;
  assignedAt: string;
  /** Term of the supervisor lease under which it was written (supervisor/leadership.ts); absent: written before leases. */
  term?: number;
  /**
   * A planned move from a live owner (a drain, a rebalance): the PNode handing over. The new
   * owner waits (a bounded time) for its `released` event — its last checkpoint committed —
   * before it restores, so nothing is replayed (runtime/pnode/ownership.ts).
   */
  handover?: string;
}

/**
 * Why `next` must not replace `prev` (a record of the same VNode), or null: a record
 * written under an older supervisor term than the one it replaces comes from a deposed
 * leader (supervisor/leadership.ts) and is refused by every reader.
 */
export function termRegression(prev: OwnershipRecord | undefined, next: OwnershipRecord): string | null {
  const was = prev?.term ?? 0;
  const now = next.term ?? 0;
  return now < was ? `written under supervisor term ${now}, after a record of term ${was}: a deposed supervisor's write` : null;
}

/** A KV compare-and-set that lost (another writer was first). */
export const isCasConflict = (err: unknown) => /wrong last sequence|key exists/i.test(String((err as Error)?.message ?? err));

export interface AssignOptions {
  /** The highest epoch the caller has seen for it. @default 0 */
  knownEpoch?: number;
  /** Auth on: the new owner's key, recorded for the epoch before the record. */
  signed?: { epochs: KV; publicKey: string; generation: number };
  /** The supervisor term it is written under: refused over a record of a higher one. */
  term?: number;
  /** The live owner handing over (a planned move). */
  handover?: string;
}

/**
 * Assign a VNode to `pnode` under a new, higher epoch (compare-and-set, retried on a race).
 * The new epoch fences the previous owner once the new one commits its takeover write.
 * `knownEpoch` is the highest epoch the caller has seen for it: a value in KV that is not
 * an ownership record (anyone can write one) hides the real epoch, and is replaced by
 * CAS on its revision with an epoch above both.
 */
export async function assignOwner(kv: KV, deployment: string, index: number, pnode: string, o: AssignOptions = {}): Promise<OwnershipRecord> {
  const { knownEpoch = 0, signed, term, handover } = o;
  const key = ownerKey(deployment, index);
  for (let attempt = 0; attempt < 10; attempt++) {
    const e = await kv.get(key);
    const parsed = e && e.operation === 'PUT' && e.length > 0 ? parseOwnershipRecord(e.value) : null;
    const epoch = Math.max(parsed?.ok ? parsed.value.epoch : 0, knownEpoch) + 1;
    if (term !== undefined && parsed?.ok && (parsed.value.term ?? 0) > term) throw new Error(`${key} was written under supervisor term ${parsed.value.term}, this supervisor's is ${term}: deposed`);
    const record: OwnershipRecord = { pnode, epoch, assignedAt: new Date().toISOString(), ...(term !== undefined ? { term } : {}), ...(handover && handover !== pnode ? { handover } : {}) };
    const bytes = JSON.stringify(record);
    // The epoch's key first: by the time anyone runs under the epoch, its signer is known.
    if (signed) await signed.epochs.put(epochKey(deployment, signed.generation, index, epoch), JSON.stringify({ pnode, publicKey: signed.publicKey } satisfies EpochRecord));
    try {
      if (e) await kv.update(key, bytes, e.revision);
      else await kv.create(key, bytes);
      return record;
    } catch (err) {
      if (!isCasConflict(err)) throw err;
    }
  }
  throw new Error(`could not assign ${key}: too many concurrent assignments`);
}

/**
 * Every cluster event from every source, parsed. Anyone may publish on these subjects:
 * what is not an event is dropped here, so no subscriber's callback ever throws on it
 * (a throwing callback ends the subscription's reader).
 */
export function subscribeClusterEvents(nc: NatsConnection, onEvent: (e: ClusterEvent, source: string) => void): Subscription {
  return nc.subscribe(Subject.eventsAll, {
    callback: (_err, m) => {
      const e = parseClusterEvent(m.data);
      if (e.ok) onEvent(e.value, m.subject.slice(Subject.events('').length));
    },
  });
}
