/**
 * A PNode answers inference requests (runtime/inference.ts) for the VNodes it owns:
 * while the ownership bucket names it, it listens on the VNode's inference subject
 * (queue group: during a move, old and new owner answer alike), loads the requested
 * version's parameters from KV once (a few versions cached per VNode) and runs the
 * VNode's forward on them. Training is untouched: no stash, no mailbox, no update.
 * A request it cannot answer gets an error reply naming why; nothing a client sends
 * can crash it (invariant 7).
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { HostedDeployment } from '../actor-host.js';
import { decodeInferRequest, encodeInferError, encodeInferReply, forwardVNode, inferSubject, INFER_QUEUE } from '../inference.js';
import type { Kernels } from '../kernels/types.js';
import { isTextDataset } from '../model.js';
import type { StateStore } from '../state-store.js';
import { loadVNodeVersion } from '../versions.js';
import type { Tensors } from '../vnode-type.js';

/** Versions of one VNode's parameters kept in memory. */
const CACHED_VERSIONS = 4;

export interface InferenceResponder {
  /** Answer VNode `index` of `d` (this PNode owns it now). */
  attach(d: HostedDeployment, index: number): void;
  /** Stop answering it (moved, released, failed). */
  detach(deployment: string, index: number): void;
  stop(): void;
  /** Requests answered and refused so far. */
  counts(): { answered: number; refused: number };
}

export function serveInference(o: { nc: NatsConnection; store: StateStore; kernels: Kernels; log(line: string): void }): InferenceResponder {
  const hosted = new Map<string, { d: HostedDeployment; sub: Subscription }>();
  const cache = new Map<string, Promise<Tensors>>();
  let answered = 0;
  let refused = 0;
  const said = new Set<string>();

  function versionOf(d: HostedDeployment, index: number, step: number): Promise<Tensors> {
    const key = `${d.model.spec.name}.${index}@${d.generation}/${step}`;
    let p = cache.get(key);
    if (!p) {
      p = loadVNodeVersion(o.store, d.model, index, d.generation, step);
      p.catch(() => cache.delete(key));
      cache.set(key, p);
      const prefix = `${d.model.spec.name}.${index}@`;
      const mine = [...cache.keys()].filter((k) => k.startsWith(prefix));
      for (const old of mine.slice(0, Math.max(0, mine.length - CACHED_VERSIONS))) cache.delete(old);
    }
    return p;
  }

  /** The reply's bytes, or the sentence of an error reply. */
  async function answer(key: string, index: number, data: Uint8Array): Promise<Uint8Array | string> {
    const entry = hosted.get(key);
    if (!entry) return `${key} is not hosted here (it moved): retry`;
    const { d } = entry;
    const req = decodeInferRequest(data);
    if (typeof req === 'string') return req;
    const v = d.model.vnodes[index];
    const { header, inputs } = req;
    if (header.generation !== d.generation) return `${key}: generation ${header.generation} asked, this PNode hosts generation ${d.generation} (the deployment was replaced)`;
    if (inputs.length !== v.inputs.length) return `${key} takes ${v.inputs.length} input(s), got ${inputs.length}`;
    const rows = inputs[0].shape[0];
    // Token ids straight from the dataset may be a window shorter than the context (the
    // first tokens of a sample); everything else ends in the VNode's features.
    const ids = v.inputs[0] < 0 && isTextDataset(d.model.spec);
    for (const x of inputs) {
      const last = x.shape[x.shape.length - 1];
      const fits = ids ? x.shape.length === 2 && last <= v.inFeatures : x.shape.length >= 2 && x.shape.length <= 3 && last === v.inFeatures;
      if (!fits || x.shape[0] !== rows) {
        return ids
          ? `${key} takes token ids [rows, ≤ ${v.inFeatures}], got ${inputs.map((t) => `[${t.shape}]`).join(', ')}`
          : `${key} takes [rows, ${v.inFeatures}] or [rows, time, ${v.inFeatures}] inputs of equal rows, got ${inputs.map((t) => `[${t.shape}]`).join(', ')}`;
      }
    }
    const versioned = (v.def.parameters ?? []).length > 0;
    const tensors = versioned ? await versionOf(d, index, header.step) : {};
    return encodeInferReply(await forwardVNode(o.kernels, v, tensors, inputs));
  }

  function reply(msg: Msg, out: Uint8Array | string): void {
    if (typeof out === 'string') {
      refused++;
      if (!said.has(out) && said.size < 100) {
        said.add(out);
        o.log(`inference request refused: ${out}`);
      }
    } else answered++;
    if (msg.reply) msg.respond(typeof out === 'string' ? encodeInferError(out) : out);
  }

  return {
    attach(d, index) {
      const key = `${d.model.spec.name}.${index}`;
      const had = hosted.get(key);
      if (had) {
        had.d = d;
        return;
      }
      const sub = o.nc.subscribe(inferSubject(d.model.spec.name, index), {
        queue: INFER_QUEUE,
        callback: (err, msg) => {
          if (err) return;
          void answer(key, index, msg.data).then(
            (out) => reply(msg, out),
            (e: Error) => reply(msg, `${key}: ${e.message}`),
          );
        },
      });
      hosted.set(key, { d, sub });
    },
    detach(deployment, index) {
      const key = `${deployment}.${index}`;
      hosted.get(key)?.sub.unsubscribe();
      hosted.delete(key);
      for (const k of [...cache.keys()]) if (k.startsWith(`${key}@`)) cache.delete(k);
    },
    stop() {
      for (const { sub } of hosted.values()) sub.unsubscribe();
      hosted.clear();
      cache.clear();
    },
    counts: () => ({ answered, refused }),
  };
}
