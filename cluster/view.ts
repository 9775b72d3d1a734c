/**
 * Reading the cluster as the supervisor sees it: its view in KV (`SupervisorKey.view`),
 * and waiting for live PNodes. What `dcnr status`, `dcnr train --nats`, the dashboard,
 * the scenario runner and the benchmarks read.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { openBuckets } from '../runtime/cluster-state.js';
import { SupervisorKey, type SupervisorView } from '../runtime/protocol.js';
import { parseSupervisorView, readRecord } from '../runtime/records.js';

/** The supervisor's current view, or null when no supervisor has published a valid one. */
export async function readView(nc: NatsConnection): Promise<SupervisorView | null> {
  const { members } = await openBuckets(nc);
  return (await readRecord(members, SupervisorKey.view, parseSupervisorView))?.value ?? null;
}

/** Wait until a live supervisor reports at least `n` live PNodes; returns the view. */
export async function waitForPNodes(nc: NatsConnection, n: number, timeoutMs = 60_000): Promise<SupervisorView> {
  const deadline = Date.now() + timeoutMs;
  let view: SupervisorView | null = null;
  while (Date.now() < deadline) {
    view = await readView(nc);
    if (view && Date.now() - view.at < 5000 && view.pnodes.filter((p) => p.alive).length >= n) return view;
    await sleep(100);
  }
  const alive = view?.pnodes.filter((p) => p.alive).map((p) => p.id) ?? [];
  throw new Error(
    view
      ? `waited ${timeoutMs / 1000} s for ${n} live PNodes; the supervisor sees ${alive.length} (${alive.join(', ') || 'none'})`
      : `no supervisor answered within ${timeoutMs / 1000} s (start one: dcnr supervisor --nats URL, or dcnr up)`,
  );
}
