/**
 * Deploying a run: the deployment record (the model and the run's fixed arguments)
 * and the mailbox streams — either a fresh run that replaces whatever an earlier run
 * left under the same name, or `--resume` of the stored run after checking it is the
 * same run. Returns the deployment's generation (the KV revision of its record) and the
 * initial parameters it starts from, if any (`dcnr train --init`: written to KV here,
 * named in the record; runtime/initial-parameters.ts).
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import { readDeployment, writeDeployment, type Buckets, type DeploymentRecord } from '../runtime/cluster-state.js';
import { deployedVNodes } from '../runtime/federated/federation.js';
import { removeInitialParameters, writeInitialParameters, type InitialParameters } from '../runtime/initial-parameters.js';
import { ensureDeploymentStreams, removeDeploymentStreams } from '../runtime/mailbox.js';
import type { ResolvedModel } from '../runtime/model.js';
import { ownerKey, SupervisorKey } from '../runtime/protocol.js';
import { parseSupervisorView, readRecord } from '../runtime/records.js';
import type { StateStore } from '../runtime/state-store.js';
import type { Tensors } from '../runtime/vnode-type.js';

export interface DeployOptions {
  jsm: JetStreamManager;
  buckets: Buckets;
  store: StateStore;
  model: ResolvedModel;
  /** The record to write; its `init` is filled in from `init`. */
  record: Omit<DeploymentRecord, 'init'>;
  resume: boolean;
  /** Start from these parameters (per VNode index, checked against the model: runtime/parameters.ts `fromNamedTensors`). */
  init?: { tensors: Tensors[] } & Omit<InitialParameters, 'tensors'>;
}

export interface Deployed {
  generation: number;
  /** The parameters the run starts from, as its record names them. */
  init?: InitialParameters;
}

export async function deploy(o: DeployOptions): Promise<Deployed> {
  const dep = o.model.spec.name;
  const deployed = o.resume ? await checkResumable(o) : await replaceRun(o);
  await ensureDeploymentStreams(o.jsm, dep);
  return deployed;
}

/** The stored run must be this one: same seed, batch, steps, spec and hosting. */
async function checkResumable({ buckets, model, record, init }: DeployOptions): Promise<Deployed> {
  const existing = await readDeployment(buckets.deployments, model.spec.name);
  if (!existing) throw new Error(`--resume: deployment ${model.spec.name} has no stored run to resume`);
  for (const key of ['seed', 'batch', 'steps'] as const) {
    if (existing[key] !== record[key]) throw new Error(`--resume: the stored run has ${key}=${existing[key]}, this command says ${record[key]}`);
  }
  if (JSON.stringify(existing.spec) !== JSON.stringify(model.spec)) throw new Error(`--resume: the stored run used a different model spec`);
  if ((existing.init?.paramsHash ?? null) !== (init?.paramsHash ?? null)) {
    throw new Error(
      existing.init
        ? `--resume: the stored run started from ${existing.init.source ?? 'given parameters'} (paramsHash ${existing.init.paramsHash.slice(0, 12)}…); resume it with the same --init`
        : '--resume: the stored run started from its types\' random init; resume it without --init',
    );
  }
  if ((existing.trainerKey ?? null) !== (record.trainerKey ?? null)) {
    throw new Error(
      existing.trainerKey
        ? `--resume: the stored run was deployed by the trainer key ${existing.trainerKey.slice(0, 12)}…; resume it with the same credentials (its feeds must carry that key's signature)${record.trainerKey ? '' : ', and with auth on'}`
        : '--resume: the stored run was deployed without auth; resume it with --no-auth',
    );
  }
  if (!!existing.hostedBy !== !!record.hostedBy) {
    throw new Error(`--resume: the stored run was ${existing.hostedBy ? 'hosted in one process (--pnodes 0)' : 'placed on a cluster'}; resume it the same way`);
  }
  return { generation: existing.generation, ...(existing.init ? { init: existing.init } : {}) };
}

/**
 * A fresh run: the old record goes first, so from then on no supervisor places the old
 * deployment and whatever an old run's PNodes still write carries the old generation.
 * (delete, not purge: KV watchers on nats-server 2.9 miss some of several concurrent
 * purges — rollup markers — but see every delete.)
 */
async function replaceRun({ jsm, buckets, store, model, record, init }: DeployOptions): Promise<Deployed> {
  const dep = model.spec.name;
  const old = await readDeployment(buckets.deployments, dep);
  // Every VNode of the old run and of this one: a federated run deploys more than its spec lists (replicas, aggregators).
  const indices = Array.from({ length: Math.max(model.vnodes.length, old ? deployedVNodes(old.spec, old.shapes).length : 0) }, (_, i) => i);
  await buckets.deployments.delete(dep).catch(() => {});
  await Promise.all(indices.map((i) => buckets.owners.delete(ownerKey(dep, i)).catch(() => {})));
  const ownersGone = Date.now();
  // The old run's actors stop as their PNodes see their ownership go; until they have, its
  // mailboxes stay: the new run's consumers would have their names (epochs restart at 1
  // with each generation) and a stale actor could take the new run's first messages.
  await waitUntilUnhosted(buckets, dep, ownersGone, !!old);
  await removeDeploymentStreams(jsm, dep);
  await Promise.all(indices.map((i) => store.remove(dep, i)));
  // The old run's initial parameters go before ours are written: they share the keys.
  await removeInitialParameters(store, dep, old?.init);
  const stored = init && (await writeInitialParameters(store, model, init.tensors, { paramsHash: init.paramsHash, ...(init.source !== undefined ? { source: init.source } : {}) }));
  const generation = await writeDeployment(buckets.deployments, { ...record, ...(stored ? { init: stored } : {}) });
  return { generation, ...(stored ? { init: stored } : {}) };
}

/** How long a fresh run waits for the PNodes of the run it replaces to let go of its VNodes. */
const UNHOSTED_WAIT_MS = 30_000;

/** A supervisor's view older than this when a fresh run starts: no supervisor is running (a `--pnodes 0` run on a network whose cluster is gone). */
const NO_SUPERVISOR_MS = 15_000;

/**
 * Until no live PNode says (in its heartbeat, through the supervisor's view) that it hosts
 * a VNode of `dep`, in a view the supervisor wrote after `since` (when the old run's
 * owners were deleted): right after a nats-server restart the view in KV is the one from
 * before it, and the old run's actors — some in a restart's back-off — would go on sending
 * into the new run's mailboxes. Immediate when there is no view, or when it is so old that
 * no supervisor runs, or when no old run was recorded and the view names no holder. Gives
 * up after UNHOSTED_WAIT_MS, and says so. (`view.at` is the supervisor's clock, `since`
 * ours: on separate machines keep them in sync.)
 */
async function waitUntilUnhosted(buckets: Buckets, dep: string, since: number, oldRun: boolean): Promise<void> {
  const deadline = Date.now() + UNHOSTED_WAIT_MS;
  for (let first = true; ; first = false) {
    const view = (await readRecord(buckets.members, SupervisorKey.view, parseSupervisorView).catch(() => null))?.value;
    if (!view || since - view.at > NO_SUPERVISOR_MS) return;
    const holders = view.pnodes.filter((p) => p.alive && p.vnodes.some((v) => v.startsWith(`${dep}.`))).map((p) => p.id);
    // The first run of a name that nobody hosts: no old actors to wait for.
    if ((view.at >= since || (first && !oldRun)) && holders.length === 0) return;
    if (Date.now() > deadline) {
      process.stderr.write(
        holders.length
          ? `train: ${holders.join(', ')} still host VNodes of the replaced run of ${dep} after ${UNHOSTED_WAIT_MS} ms; going on\n`
          : `train: the supervisor wrote no view in ${UNHOSTED_WAIT_MS} ms to say the replaced run of ${dep} is unhosted; going on\n`,
      );
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
