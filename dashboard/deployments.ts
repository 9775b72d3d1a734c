/** Deployments and their VNode types, for drawing pipelines (`/api/deployments`). */
import type { NatsConnection } from '@nats-io/transport-node';
import { openBuckets } from '../runtime/cluster-state.js';
import { wireInputs } from '../runtime/model.js';
import { parseDeploymentRecord, parseEntry } from '../runtime/records.js';

export interface DeploymentSummary {
  name: string;
  vnodes: string[];
  /** Per VNode, the indices it reads (-1: the dataset): the model's graph. */
  inputs: number[][];
  steps: number;
  batch: number;
  createdAt: string;
}

export async function listDeployments(nc: NatsConnection): Promise<DeploymentSummary[]> {
  const { deployments } = await openBuckets(nc);
  const out: DeploymentSummary[] = [];
  for await (const key of await deployments.keys()) {
    const r = parseEntry(await deployments.get(key), parseDeploymentRecord);
    if (!r) continue;
    let inputs: number[][];
    try {
      inputs = wireInputs(r.spec);
    } catch {
      continue; // a record whose graph does not wire is not drawn (its deployment was refused too)
    }
    out.push({ name: r.spec.name, vnodes: r.spec.vnodes.map((v) => v.type), inputs, steps: r.steps, batch: r.batch, createdAt: r.createdAt });
  }
  return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}
