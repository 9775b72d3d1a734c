/**
 * Hosts VNode actors in this process: activates them, runs their loops, and applies
 * local supervision in the OTP sense — an actor whose handler throws is restarted
 * from its last committed state after a backoff; past a restart intensity
 * (`maxRestarts` in `withinMs`) it is given up and reported (`escalated`), so a
 * supervisor can move it. A fenced actor is dropped at once, never restarted.
 */
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { setTimeout as sleep } from 'node:timers/promises';
import type { InitialParameters } from './initial-parameters.js';
import type { Kernels } from './kernels/types.js';
import type { ResolvedModel } from './model.js';
import { Subject } from './protocol.js';
import { FencedError, StateStore } from './state-store.js';
import { VNodeActor, type ActorEvent, type ActorExit } from './vnode-actor.js';

export type HostEvent = ActorEvent | { type: 'restarting'; vnode: string; error: string; attempt: number; delayMs: number } | { type: 'escalated'; vnode: string; error: string };

export interface ActorHostOptions {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  store: StateStore;
  kernels: Kernels;
  onEvent?: (event: HostEvent) => void;
  /** Restart intensity: at most this many restarts … @default 5 */
  maxRestarts?: number;
  /** … within this window. @default 30000 */
  withinMs?: number;
  /** First backoff; doubles per restart, capped at 5 s. @default 100 */
  backoffMs?: number;
  /** Passivate a VNode idle this long; it reactivates on its next message. @default never */
  passivateAfterMs?: number;
  /** Passed to every actor: an injected per-message delay (fault injection). */
  messageDelayMs?: () => number;
  /** Fault injection (a liar): the factor its gradients are scaled by. @default honest */
  corruptGradients?: () => number;
  /** The PNode this host runs in (traces name it). */
  pnode?: string;
}

/** What a host needs to know of a deployment to run its VNodes. */
export interface HostedDeployment {
  model: ResolvedModel;
  seed: number;
  /** The deployment's generation (the KV revision of its record). */
  generation: number;
  /** Who deployed it (its feeds are signed by this key when auth is on). */
  trainerKey?: string;
  /** The parameters it starts from instead of its types' init (`dcnr train --init`). */
  init?: InitialParameters;
}

/** The outcome of hosting one VNode. */
export type HostedExit = Exclude<ActorExit, 'passivated'> | 'escalated';

interface Hosted {
  actor: VNodeActor | undefined;
  stopping: boolean;
  /** Set while passivated: wakes it (to stop, or because mail came). */
  wake?: () => void;
  done: Promise<HostedExit>;
}

export class ActorHost {
  readonly #o: ActorHostOptions;
  readonly #hosted = new Map<string, Hosted>();

  constructor(o: ActorHostOptions) {
    this.#o = o;
  }

  /** Keys of the VNodes hosted now (`<deployment>.<index>`). */
  get hosted(): string[] {
    return [...this.#hosted.keys()];
  }

  /**
   * Host VNode `index` of `model` under `epoch`. Resolves when it finishes, is fenced,
   * is stopped, or is escalated.
   */
  host(d: HostedDeployment, index: number, epoch: number): Promise<HostedExit> {
    const key = `${d.model.spec.name}.${index}`;
    const existing = this.#hosted.get(key);
    if (existing) return existing.done;
    const hosted: Hosted = { actor: undefined, stopping: false, done: Promise.resolve<HostedExit>('stopped') };
    hosted.done = this.#supervise(hosted, d, index, epoch).finally(() => this.#hosted.delete(key));
    this.#hosted.set(key, hosted);
    return hosted.done;
  }

  /**
   * Stop hosting one VNode (after the message in hand). Resolves with the KV revision of
   * the checkpoint it stopped with, which covers all it applied (undefined when it was not
   * live: passivated, or not started).
   */
  async release(deployment: string, index: number): Promise<number | undefined> {
    const hosted = this.#hosted.get(`${deployment}.${index}`);
    if (!hosted) return undefined;
    hosted.stopping = true;
    const actor = hosted.actor;
    actor?.stop();
    hosted.wake?.();
    const exit = await hosted.done;
    return exit === 'stopped' ? actor?.committedRevision : undefined;
  }

  /** Stop every actor and wait for them. */
  async stopAll(): Promise<void> {
    for (const h of this.#hosted.values()) {
      h.stopping = true;
      h.actor?.stop();
      h.wake?.();
    }
    await Promise.all([...this.#hosted.values()].map((h) => h.done));
  }

  /** Messages waiting in the mailboxes of the live (not passivated) actors here. */
  async pendingMessages(): Promise<number> {
    let n = 0;
    for (const h of this.#hosted.values()) n += (await h.actor?.pendingMessages().catch(() => 0)) ?? 0;
    return n;
  }

  /** The live actor of a VNode, if hosted here. */
  actor(deployment: string, index: number): VNodeActor | undefined {
    return this.#hosted.get(`${deployment}.${index}`)?.actor;
  }

  /** A passivated VNode: out of memory until a message reaches one of its ports (or it is released). */
  async #sleepUntilMail(hosted: Hosted, deployment: string, index: number): Promise<void> {
    const actor = hosted.actor!;
    hosted.actor = undefined;
    let wake!: () => void;
    const woken = new Promise<void>((r) => (wake = r));
    // Subscribe first, then look at what is already waiting: no message slips between.
    const sub = this.#o.nc.subscribe(Subject.mailboxVNode(deployment, index), { callback: () => wake() });
    hosted.wake = wake;
    try {
      if ((await actor.pendingMessages()) > 0) return;
      await woken;
    } finally {
      sub.unsubscribe();
      hosted.wake = undefined;
    }
  }

  async #supervise(hosted: Hosted, d: HostedDeployment, index: number, epoch: number): Promise<HostedExit> {
    const { maxRestarts = 5, withinMs = 30_000, backoffMs = 100 } = this.#o;
    const failures: number[] = [];
    const vnode = `${d.model.spec.name}.${index}`;
    for (;;) {
      if (hosted.stopping) return 'stopped';
      try {
        hosted.actor = await VNodeActor.activate({ ...this.#o, ...d, index, epoch, onEvent: this.#o.onEvent });
        if (hosted.stopping) hosted.actor.stop();
        const exit = await hosted.actor.run();
        if (exit !== 'passivated') return exit;
        if (hosted.stopping) return 'stopped';
        await this.#sleepUntilMail(hosted, d.model.spec.name, index);
      } catch (err) {
        if (err instanceof FencedError) {
          this.#o.onEvent?.({ type: 'fenced', vnode, epoch, cause: 'activation' });
          return 'fenced';
        }
        const now = Date.now();
        failures.push(now);
        while (failures.length && failures[0] < now - withinMs) failures.shift();
        const error = (err as Error)?.stack ?? String(err);
        if (failures.length > maxRestarts) {
          this.#o.onEvent?.({ type: 'escalated', vnode, error });
          return 'escalated';
        }
        const delayMs = Math.min(5000, backoffMs * 2 ** (failures.length - 1));
        this.#o.onEvent?.({ type: 'restarting', vnode, error, attempt: failures.length, delayMs });
        hosted.actor = undefined;
        await sleep(delayMs);
      }
    }
  }
}
