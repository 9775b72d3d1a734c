/**
 * When a run is complete: every VNode's committed schedule says so (the last loss is
 * not enough: the first layers apply their last updates after it). And where a resumed
 * trainer starts: the loss VNode's committed progress.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { HostedExit } from '../runtime/actor-host.js';
import type { ResolvedModel } from '../runtime/model.js';
import { nextInput, type ScheduleState } from '../runtime/schedule.js';
import type { StateStore } from '../runtime/state-store.js';
import type { VNodeMachineContext } from '../runtime/vnode-machine.js';
import { retrying } from './retry.js';

async function contextOf(store: StateStore, dep: string, index: number): Promise<VNodeMachineContext | null> {
  const c = await store.read(dep, index).catch(() => null); // damaged: not done (its owner rewrites it)
  return c ? (c.meta.snapshot as { context: VNodeMachineContext }).context : null;
}

/** How many steps the loss VNode has completed (where a resumed trainer starts sending). */
export async function lossProgress(store: StateStore, model: ResolvedModel): Promise<number> {
  const ctx = await contextOf(store, model.spec.name, model.vnodes.length - 1);
  return ctx ? (ctx.schedule as ScheduleState).targetNext : 0;
}

async function allDone(store: StateStore, model: ResolvedModel): Promise<boolean> {
  for (const v of model.vnodes) {
    const ctx = await contextOf(store, model.spec.name, v.index);
    if (!ctx || nextInput(v.def.role, ctx.schedule, model.spec.pipelineDepth) !== null) return false;
  }
  return true;
}

/** Poll until every VNode is done; a locally hosted VNode that stopped for good ends it. */
export async function waitUntilDone(store: StateStore, model: ResolvedModel, hosted: Promise<HostedExit>[], signal?: AbortSignal): Promise<void> {
  while (!(await retrying(signal, () => allDone(store, model)))) {
    signal?.throwIfAborted();
    for (const h of hosted) {
      const exit = await Promise.race([h, Promise.resolve(undefined)]);
      if (exit === 'escalated' || exit === 'fenced') throw new Error(`a locally hosted VNode stopped: ${exit}`);
    }
    await sleep(25);
  }
}
