/**
 * Deploying a run: the deployment record (the model and the run's fixed arguments)
 * and the mailbox streams — either a fresh run that replaces whatever an earlier run
 * left under the same name, or `--resume` of the stored run after checking it is the
 * same run. Returns the deployment's generation (the KV revision of its record).
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import { readDeployment, writeDeployment, type Buckets, type DeploymentRecord } from '../runtime/cluster-state.js';
import { ensureDeploymentStreams, removeDeploymentStreams } from '../runtime/mailbox.js';
import type { ResolvedModel } from '../runtime/model.js';
import { ownerKey } from '../runtime/protocol.js';
import type { StateStore } from '../runtime/state-store.js';

export interface DeployOptions {
  jsm: JetStreamManager;
  buckets: Buckets;
  store: StateStore;
  model: ResolvedModel;
  record: DeploymentRecord;
  resume: boolean;
}

export async function deploy(o: DeployOptions): Promise<number> {
  const dep = o.model.spec.name;
  const generation = o.resume ? await checkResumable(o) : await replaceRun(o);
  await ensureDeploymentStreams(o.jsm, dep);
  return generation;
}

/** The stored run must be this one: same seed, batch, steps, spec and hosting. */
async function checkResumable({ buckets, model, record }: DeployOptions): Promise<number> {
  const existing = await readDeployment(buckets.deployments, model.spec.name);
  if (!existing) throw new Error(`--resume: deployment ${model.spec.name} has no stored run to resume`);
  for (const key of ['seed', 'batch', 'steps'] as const) {
    if (existing[key] !== record[key]) throw new Error(`--resume: the stored run has ${key}=${existing[key]}, this command says ${record[key]}`);
  }
  if (JSON.stringify(existing.spec) !== JSON.stringify(model.spec)) throw new Error(`--resume: the stored run used a different model spec`);
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
  return existing.generation;
}

/**
 * A fresh run: the old record goes first, so from then on no supervisor places the old
 * deployment and whatever an old run's PNodes still write carries the old generation.
 * (delete, not purge: KV watchers on nats-server 2.9 miss some of several concurrent
 * purges — rollup markers — but see every delete.)
 */
async function replaceRun({ jsm, buckets, store, model, record }: DeployOptions): Promise<number> {
  const dep = model.spec.name;
  await buckets.deployments.delete(dep).catch(() => {});
  await removeDeploymentStreams(jsm, dep);
  await Promise.all(
    model.vnodes.map(async (v) => {
      await store.remove(dep, v.index);
      await buckets.owners.delete(ownerKey(dep, v.index)).catch(() => {});
    }),
  );
  return writeDeployment(buckets.deployments, record);
}
