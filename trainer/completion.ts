/**
 * When a run is complete: every VNode's committed schedule says so (the last loss is
 * not enough: the first layers apply their last updates after it). And where a resumed
 * trainer starts: the lowest committed watermark of the VNodes it feeds.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { HostedExit } from '../runtime/actor-host.js';
import type { ResolvedModel } from '../runtime/model.js';
import type { StateStore } from '../runtime/state-store.js';
import { readProgress } from '../runtime/vnode-record.js';
import { retrying } from './retry.js';

/**
 * Where a resumed trainer starts sending: the lowest seq that the first VNode (`fwd`) or
 * the loss (`target`) has not committed. Feeds handed over in memory (trainer/local-feed.ts)
 * exist nowhere else, so the first VNode's watermark counts, not only the loss's; re-sends
 * below a watermark are dropped as duplicates.
 */
export async function feedProgress(store: StateStore, model: ResolvedModel): Promise<number> {
  const read = async (index: number) => {
    const c = await store.read(model.spec.name, index);
    if (!c) return null;
    const progress = readProgress(c.meta);
    if (!progress.ok) throw new Error(`--resume: the stored state of ${model.spec.name}.${index} is unreadable: ${progress.error}`);
    return progress.value.schedule;
  };
  const loss = await read(model.vnodes.length - 1);
  const first = await read(0);
  return Math.min(loss?.targetNext ?? 0, first?.fwdNext ?? 0);
}

/**
 * Every VNode's committed schedule is complete. A damaged or unreadable record is "not
 * done" (its live owner writes over it at its next commit), said once per reason.
 */
async function allDone(store: StateStore, model: ResolvedModel, say: (line: string) => void): Promise<boolean> {
  for (const v of model.vnodes) {
    let c;
    try {
      c = await store.read(model.spec.name, v.index);
    } catch (err) {
      say((err as Error).message);
      return false;
    }
    const progress = c && readProgress(c.meta, { role: v.def.role, depth: v.depth });
    if (progress && !progress.ok) say(`${model.spec.name}.${v.index}: ${progress.error}`);
    if (!progress?.ok || !progress.value.complete) return false;
  }
  return true;
}

/** Poll until every VNode is done; a locally hosted VNode that stopped for good ends it. */
export async function waitUntilDone(store: StateStore, model: ResolvedModel, hosted: Promise<HostedExit>[], signal?: AbortSignal): Promise<void> {
  const said = new Set<string>();
  const say = (line: string) => {
    if (said.has(line)) return;
    said.add(line);
    process.stderr.write(`dcnr: waiting for completion: ${line}\n`);
  };
  while (!(await retrying(signal, () => allDone(store, model, say)))) {
    signal?.throwIfAborted();
    for (const h of hosted) {
      const exit = await Promise.race([h, Promise.resolve(undefined)]);
      if (exit === 'escalated' || exit === 'fenced') throw new Error(`a locally hosted VNode stopped: ${exit}`);
    }
    await sleep(25);
  }
}
