/** Deployments and their VNode types, for drawing pipelines (`/api/deployments`). */
import type { NatsConnection } from '@nats-io/transport-node';
import { openBuckets } from '../runtime/cluster-state.js';
import { parseDeploymentRecord, parseEntry } from '../runtime/records.js';

export interface DeploymentSummary {
  name: string;
  vnodes: string[];
  steps: number;
  batch: number;
  createdAt: string;
}

export async function listDeployments(nc: NatsConnection): Promise<DeploymentSummary[]> {
  const { deployments } = await openBuckets(nc);
  const out: DeploymentSummary[] = [];
  for await (const key of await deployments.keys()) {
    const r = parseEntry(await deployments.get(key), parseDeploymentRecord);
    if (r) out.push({ name: r.spec.name, vnodes: r.spec.vnodes.map((v) => v.type), steps: r.steps, batch: r.batch, createdAt: r.createdAt });
  }
  return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}
