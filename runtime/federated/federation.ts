/**
 * Federated data-parallel training (docs/federated.md): a deployment runs R replicas of
 * its model's graph, each fed by its own data owner, and every `syncEvery` updates each
 * replica's layer with parameters sends its aggregator the change of its parameters over
 * the round (compressed, with error feedback); the aggregator applies an outer optimizer
 * and sends the update back. This file says what a federated deployment IS: its spec
 * (`federation` in the model spec) and the VNodes it expands to. The math of a round is
 * in rounds.ts, the wire format of the updates in compress.ts and frame.ts.
 *
 * One deployment, one generation: replica r's copy of VNode i is VNode r·N + i (N VNodes
 * per replica), so replica 0 is the model itself at its usual indices, and the aggregator
 * of the a-th layer with parameters is VNode R·N + a. Every process derives the same
 * expansion from the same spec. Subjects, KV keys, ownership, placement, migration,
 * checkpoints and signatures work per index as for any VNode: an aggregator is a durable
 * VNode like any other.
 *
 * Determinism (invariant 3): a round's membership is every replica, always. A replica
 * whose PNode dies is moved and replayed like any VNode, so the round waits for it and
 * ends with the same bits; no timing decides who takes part. Every replica starts from
 * the same parameters (initialised from the base index, not the replica's), and applies
 * the same decoded outer update to the same anchor, so all replicas and the aggregator
 * hold the same parameters after every round.
 */
import { z } from 'zod';
import type { ResolvedModel, ResolvedVNode } from '../model.js';
import type { Rounds } from '../schedule.js';
import type { AggregatorDefinition } from '../vnode-type.js';
import { parameterShapesOf } from '../parameters.js';
import { compressionText, encodeTensors, parseCompression, type Compression } from './compress.js';
import { toFrame } from './frame.js';
import { Limits } from '../protocol.js';

/** The aggregator's VNode type: one per layer with parameters (its work is rounds.ts). */
export const aggregatorType: AggregatorDefinition = {
  type: 'federated.aggregator',
  version: 1,
  role: 'aggregator',
  description: "a federated layer's aggregator: averages the replicas' deltas, applies the outer optimizer, sends the update back",
  config: z.object({}).strict() as unknown as AggregatorDefinition['config'],
  // Its layer's parameters, a residual each, Nesterov's momentum, and a round's sum: four copies (an estimate).
  stateBytes: ({ inFeatures, outFeatures }) => 4 * 4 * (inFeatures * outFeatures + outFeatures),
};

/** Replicas a deployment may have at most. */
export const MAX_REPLICAS = 16;

/** Outer optimizers' defaults: plain averaging (FedAvg) at 1.0; Nesterov (DiLoCo) at 0.7 with momentum 0.9. */
export const OUTER_DEFAULTS = { avg: { lr: 1 }, nesterov: { lr: 0.7, momentum: 0.9 } } as const;

export const FederationSpec = z
  .object({
    /** Replicas of the model's graph, each fed by its own data owner (a shard). */
    replicas: z.number().int().min(1).max(MAX_REPLICAS),
    /** Inner steps (updates) per round: H. */
    syncEvery: z.number().int().min(1).max(1_000_000),
    /** Rounds in the run: steps / H (an aggregator's work ends with the last). */
    rounds: z.number().int().min(1).max(1_000_000),
    /** Outer optimizer: `avg` (FedAvg) or `nesterov` (DiLoCo). @default 'avg' (measured on mnist-mlp at H = 50: Nesterov's 0.7 / 0.9 overshoots, docs/federated.md) */
    outer: z.enum(['avg', 'nesterov']).default('avg'),
    /** Outer learning rate. @default 1 (avg), 0.7 (nesterov) */
    outerLr: z.number().positive().max(10).optional(),
    /** Nesterov's momentum. @default 0.9 */
    momentum: z.number().min(0).max(0.999).optional(),
    /** How updates travel, both ways: none, int8[:BLOCK], topk:F, powersgd:R (compress.ts). @default 'none' */
    compress: z
      .string()
      .default('none')
      .superRefine((text, ctx) => {
        try {
          parseCompression(text);
        } catch (err) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, message: (err as Error).message });
        }
      }),
  })
  .strict();
export type FederationSpec = z.infer<typeof FederationSpec>;

/** A federation's settings, defaults filled in and compression parsed. */
export interface Federation {
  replicas: number;
  syncEvery: number;
  rounds: number;
  outer: 'avg' | 'nesterov';
  outerLr: number;
  momentum: number;
  compress: Compression;
  /** VNodes per replica (the model's own). */
  perReplica: number;
  /** The model of one replica: replica 0, at indices 0..N−1 (evaluation, export and serving read it). */
  base: ResolvedModel;
}

/** A VNode's part in the federation. */
export interface FederatedPart {
  /** The replica it belongs to; absent for an aggregator. */
  replica?: number;
  /** Its index in the model of one replica (an aggregator: its layer's). */
  base: number;
  /** Its rounds (schedule.ts): a layer with parameters, or an aggregator. */
  rounds?: Rounds;
  /** A layer's aggregator. */
  aggregator?: number;
  /** An aggregator's layer, as in replica 0. */
  layer?: ResolvedVNode;
  federation: Federation;
}

const withoutFederation = <S extends { federation?: unknown }>(spec: S): S => {
  const { federation: _f, ...rest } = spec;
  return rest as S;
};

/** Whether a VNode of one replica takes part in rounds: a layer with parameters. */
export const takesPart = (v: ResolvedVNode): boolean => v.def.role === 'layer' && (v.def.parameters ?? []).length > 0;

/**
 * The federated deployment of `base` (a resolved single-replica model whose spec holds
 * `federation`): R copies of its VNodes, then one aggregator per layer with parameters.
 */
export function federate(base: ResolvedModel, spec: FederationSpec): ResolvedModel {
  const N = base.vnodes.length;
  const R = spec.replicas;
  const federation: Federation = {
    replicas: R,
    syncEvery: spec.syncEvery,
    rounds: spec.rounds,
    outer: spec.outer,
    outerLr: spec.outerLr ?? OUTER_DEFAULTS[spec.outer].lr,
    momentum: spec.momentum ?? OUTER_DEFAULTS.nesterov.momentum,
    compress: parseCompression(spec.compress),
    perReplica: N,
    // One replica is a plain model (export writes its spec; `--init` from it starts a plain run).
    base: { ...base, spec: withoutFederation(base.spec) },
  };
  const rounds: Rounds = { every: spec.syncEvery, replicas: R, count: spec.rounds };
  const layers = base.vnodes.filter(takesPart);
  const vnodes: ResolvedVNode[] = [];
  for (let r = 0; r < R; r++) {
    const at = (i: number) => (i < 0 ? i : r * N + i);
    for (const v of base.vnodes) {
      const a = layers.indexOf(v);
      vnodes.push({
        ...v,
        index: at(v.index),
        inputs: v.inputs.map(at),
        consumers: v.consumers.map((c) => ({ index: at(c.index), slot: c.slot })),
        fed: { replica: r, base: v.index, federation, ...(a >= 0 ? { rounds, aggregator: R * N + a } : {}) },
      });
    }
  }
  layers.forEach((layer, a) => {
    vnodes.push({
      index: R * N + a,
      name: `aggregator-${layer.name}`,
      def: aggregatorType,
      config: {},
      inFeatures: layer.inFeatures,
      outFeatures: layer.outFeatures,
      depth: 0,
      // Its inputs are the replicas' copies of its layer (delta slot r = replica r); it answers them on their `sync` ports.
      inputs: Array.from({ length: R }, (_, r) => r * N + layer.index),
      consumers: [],
      gradPorts: [],
      fed: { base: layer.index, rounds, layer, federation },
    });
  });
  return { ...base, vnodes, federation };
}

/**
 * Every VNode a deployment record deploys, with its type and placement group, read from
 * the spec alone (the supervisor knows no types): without `federation`, the spec's
 * VNodes; with it, R copies of them (group `r<k>`), then the aggregators (group `agg`),
 * as many as the record's `shapes` list beyond the replicas.
 */
export function deployedVNodes(spec: { vnodes: ReadonlyArray<{ type: string }>; federation?: { replicas: number } }, shapes?: readonly unknown[]): Array<{ index: number; type: string; group?: string }> {
  const N = spec.vnodes.length;
  if (!spec.federation) return spec.vnodes.map((v, index) => ({ index, type: v.type }));
  const R = spec.federation.replicas;
  const out = Array.from({ length: R * N }, (_, index) => ({ index, type: spec.vnodes[index % N].type, group: `r${Math.floor(index / N)}` }));
  for (let index = R * N; index < (shapes?.length ?? 0); index++) out.push({ index, type: aggregatorType.type, group: 'agg' });
  return out;
}

/** The replica VNodes of replica `r` (the feeds of its data owner go to the first and the loss). */
export function replicaEnds(model: ResolvedModel, r: number): { first: number; loss: number } {
  const N = model.federation?.perReplica ?? model.vnodes.length;
  return { first: r * N, loss: r * N + N - 1 };
}

/** The text of a federation's compression, for JSON and logs. */
export const compressionOf = (model: ResolvedModel): string => (model.federation ? compressionText(model.federation.compress) : 'none');

/** The shape of each parameter of the layer `v` (replica or aggregator), by name, in the type's order. */
export function roundShapes(v: ResolvedVNode): Array<{ name: string; shape: number[] }> {
  const layer = v.fed?.layer ?? v;
  let shapes = shapesOf.get(layer);
  if (!shapes) {
    // Once per resolved VNode: a type without `parameterShapes` is asked through its `init`, which makes whole tensors.
    const of = parameterShapesOf(layer);
    shapes = (layer.def.parameters ?? []).map((name) => ({ name, shape: of[name] }));
    shapesOf.set(layer, shapes);
  }
  return shapes;
}
const shapesOf = new WeakMap<ResolvedVNode, Array<{ name: string; shape: number[] }>>();

/** Bytes of one replica's parameters as float32: what one uncompressed gradient exchange sends one way. */
export function parameterBytes(base: ResolvedModel): number {
  let n = 0;
  for (const v of base.vnodes.filter(takesPart)) for (const { shape } of roundShapes(v)) n += 4 * shape.reduce((a, b) => a * b, 1);
  return n;
}

/**
 * Payload bytes of one round's frames of one replica: its layers' deltas up, their syncs
 * down. A frame's size depends on the compression and the shapes only (compress.ts), so
 * encoding each layer once counts them.
 */
export function roundBytes(model: ResolvedModel): { up: number; down: number; largest: number } {
  const frames = frameBytes(model);
  const bytes = frames.reduce((a, b) => a + b, 0);
  return { up: bytes, down: bytes, largest: Math.max(0, ...frames) };
}

/** Each layer's frame, bytes on the wire (encoded once, from made-up values: sizes do not depend on them). */
function frameBytes(model: ResolvedModel): number[] {
  const fed = model.federation!;
  return fed.base.vnodes.filter(takesPart).map((v) => {
    const inputs = roundShapes(v).map(({ name, shape }) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const data = Float32Array.from({ length: n }, (_, i) => Math.sin(i + 1));
      return { name, shape, data, residual: new Float32Array(n) };
    });
    return toFrame(encodeTensors(fed.compress, inputs, 'size').bytes).data.byteLength;
  });
}

/**
 * Why a federated model's updates cannot travel, or null: a layer's frame past the
 * largest message DCNR sends (`Limits.maxTensorBytes`; a `none` or `int8` update of a
 * layer of millions of parameters) — refused before anything is deployed.
 */
export function frameProblem(model: ResolvedModel): string | null {
  const { largest } = roundBytes(model);
  if (largest <= Limits.maxTensorBytes) return null;
  return `a layer's round update is ${largest} bytes with --compress ${compressionOf(model)}, over the ${Limits.maxTensorBytes}-byte message limit: compress more (topk:F, powersgd:R)`;
}
