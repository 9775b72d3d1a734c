/**
 * Model specs: a model is a chain of VNodes, ending in a loss. A spec is data (a
 * JSON file or a built-in name); `resolveModel` validates it against the registered
 * VNode types and computes every VNode's shapes.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { NAME_PATTERN } from './protocol.js';
import { getVNodeType } from './registry.js';
import { vnodeDepth } from './schedule.js';
import type { VNodeType } from './vnode-type.js';

export const ModelSpec = z
  .object({
    /** Deployment name: subject tokens and KV keys use it. */
    name: z.string().regex(NAME_PATTERN, 'name must be 1-64 of A-Z a-z 0-9 _ -'),
    /** The dataset the trainer feeds. Only the bundled MNIST digits today. @default 'mnist' */
    dataset: z.literal('mnist').default('mnist'),
    /**
     * Pipeline depth d: a VNode may run forward seq s once backward s−d−1 is applied.
     * 0 = plain synchronous SGD; more overlaps steps across VNodes (weights d steps stale).
     * Part of the math: runs compare bit for bit only at the same depth. @default 2
     */
    pipelineDepth: z.number().int().min(0).max(16).default(2),
    /**
     * Messages a VNode applies between two checkpoints of its state (docs/checkpoints.md).
     * Not part of the math: any value gives the same parameters. 1 = commit every message.
     * @default DEFAULT_CHECKPOINT.every
     */
    checkpointEvery: z.number().int().min(1).max(100_000).optional(),
    /** Longest time, in ms, a VNode keeps applied messages uncheckpointed. @default DEFAULT_CHECKPOINT.ms */
    checkpointMs: z.number().int().min(1).max(600_000).optional(),
    vnodes: z
      .array(z.object({ type: z.string(), config: z.record(z.string(), z.unknown()).default({}) }).strict())
      .min(2, 'a model needs at least one layer and a loss'),
  })
  .strict();
export type ModelSpec = z.infer<typeof ModelSpec>;

/**
 * Checkpoint defaults, chosen by measurement (docs/checkpoints.md): rare enough that
 * persistence is a few per cent of a step, frequent enough that a replay after a crash
 * stays well under a second.
 */
export const DEFAULT_CHECKPOINT = { every: 100, ms: 1000 } as const;

/** The checkpoint policy of a spec, defaults filled in. */
export const checkpointPolicy = (spec: Pick<ModelSpec, 'checkpointEvery' | 'checkpointMs'>) => ({
  every: spec.checkpointEvery ?? DEFAULT_CHECKPOINT.every,
  ms: spec.checkpointMs ?? DEFAULT_CHECKPOINT.ms,
});

/** Run-time settings a command line may override in a spec. */
export interface SpecOverrides {
  pipelineDepth?: number;
  checkpointEvery?: number;
  checkpointMs?: number;
}

/** The spec with the given overrides applied (and validated again). */
export function withOverrides(spec: ModelSpec, o: SpecOverrides): ModelSpec {
  const defined = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  const parsed = ModelSpec.safeParse({ ...spec, ...defined });
  if (!parsed.success) throw new Error(`invalid model settings: ${issues(parsed.error)}`);
  return parsed.data;
}

/** One VNode of a resolved model. */
export interface ResolvedVNode {
  index: number;
  def: VNodeType;
  config: unknown;
  inFeatures: number;
  outFeatures: number;
  /** This VNode's pipeline depth (schedule.ts `vnodeDepth`): part of the math. */
  depth: number;
}

export interface ResolvedModel {
  spec: ModelSpec;
  vnodes: ResolvedVNode[];
  inputFeatures: number;
  outputFeatures: number;
}

/** Built-in models by name. */
export const BUILTIN_MODELS: Record<string, ModelSpec> = {
  'mnist-mlp': {
    name: 'mnist-mlp',
    dataset: 'mnist',
    pipelineDepth: 2,
    vnodes: [
      { type: 'layer.dense', config: { units: 128, init: 'he', optimizer: { kind: 'adam', lr: 0.001 } } },
      { type: 'activation.relu', config: {} },
      { type: 'layer.dense', config: { units: 64, init: 'he', optimizer: { kind: 'adam', lr: 0.001 } } },
      { type: 'activation.relu', config: {} },
      { type: 'layer.dense', config: { units: 10, init: 'xavier', optimizer: { kind: 'adam', lr: 0.001 } } },
      { type: 'loss.softmaxCrossEntropy', config: {} },
    ],
  },
  /**
   * Compute-bound: 784-2048-2048-10 (5.8M parameters), meant for `--batch 256`. Its
   * activations are 256×2048×4 = 2 MiB per message, over NATS's default 1 MiB
   * max_payload: the servers DCNR starts allow 8 MiB (README, "Message size").
   */
  'wide-mlp': {
    name: 'wide-mlp',
    dataset: 'mnist',
    pipelineDepth: 2,
    vnodes: [
      { type: 'layer.dense', config: { units: 2048, init: 'he', optimizer: { kind: 'adam', lr: 0.001 } } },
      { type: 'activation.relu', config: {} },
      { type: 'layer.dense', config: { units: 2048, init: 'he', optimizer: { kind: 'adam', lr: 0.001 } } },
      { type: 'activation.relu', config: {} },
      { type: 'layer.dense', config: { units: 10, init: 'xavier', optimizer: { kind: 'adam', lr: 0.001 } } },
      { type: 'loss.softmaxCrossEntropy', config: {} },
    ],
  },
};

const DATASET_SHAPES = { mnist: { features: 784, classes: 10 } } as const;

const issues = (err: z.ZodError) => err.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');

/** A built-in name, or a path to a JSON spec file; validated. */
export function loadModelSpec(nameOrFile: string): ModelSpec {
  const builtin = BUILTIN_MODELS[nameOrFile];
  if (builtin) return ModelSpec.parse(builtin);
  let text: string;
  try {
    text = readFileSync(nameOrFile, 'utf8');
  } catch {
    throw new Error(`--model ${JSON.stringify(nameOrFile)} is neither a built-in model (${Object.keys(BUILTIN_MODELS).join(', ')}) nor a readable file`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${nameOrFile}: not valid JSON (${(err as Error).message})`);
  }
  const parsed = ModelSpec.safeParse(json);
  if (!parsed.success) throw new Error(`${nameOrFile}: invalid model spec: ${issues(parsed.error)}`);
  return parsed.data;
}

/**
 * Every VNode's input and output features, as the deploying process resolved them, and
 * its estimated in-memory bytes at the deployment's batch (`stateBytes`, for placement).
 */
export type VNodeShapes = Array<{ inFeatures: number; outFeatures: number; stateBytes?: number }>;

/** A VNode's estimated bytes in memory when it trains at `batch` rows (`VNodeType.stateBytes`). */
export function stateBytesOf(v: ResolvedVNode, batch: number): number {
  const depth = Math.max(1, v.depth);
  const bytes = v.def.stateBytes
    ? v.def.stateBytes({ config: v.config as never, inFeatures: v.inFeatures, outFeatures: v.outFeatures, batch, depth })
    : depth * batch * v.inFeatures * 4;
  return Math.max(0, Math.round(bytes));
}

/**
 * A VNode type this process does not know, standing in a model resolved for hosting
 * other VNodes of it (`resolveModel(spec, { shapes, host })`): it has the id, and
 * anything that would run it throws. Placement never gives such a VNode to this process.
 */
function foreignType(type: string, index: number, last: boolean): VNodeType {
  const refuse = async (): Promise<never> => {
    throw new Error(`VNode type ${type} is not known in this process`);
  };
  return last
    ? { type, version: 0, role: 'loss', description: 'not known here', config: { safeParse: () => ({ success: true, data: {} }) } as never, loss: refuse }
    : { type, version: 0, role: index === 0 ? 'layer' : 'activation', description: 'not known here', config: { safeParse: () => ({ success: true, data: {} }) } as never, forward: refuse, backward: refuse };
}

/** Is this VNode's type one this process knows (not a stand-in)? */
export const isKnownType = (v: ResolvedVNode): boolean => v.def.version > 0;

/**
 * Check a spec against the registered types and compute shapes. With `shapes` (what the
 * deploying process computed, kept in the deployment record), a VNode of a type this
 * process does not know is resolved as a stand-in with those shapes — except `host`, the
 * one it is asked to run — so a PNode can host the VNodes of a model whose other types
 * only other PNodes know.
 */
export function resolveModel(input: unknown, opts: { shapes?: VNodeShapes; host?: number } = {}): ResolvedModel {
  const parsed = ModelSpec.safeParse(input);
  if (!parsed.success) throw new Error(`invalid model spec: ${issues(parsed.error)}`);
  const spec = parsed.data;
  const shapes = DATASET_SHAPES[spec.dataset];
  let features: number = shapes.features;
  const known = opts.shapes && opts.shapes.length === spec.vnodes.length ? opts.shapes : undefined;
  const depthOf = (index: number) => vnodeDepth(spec.pipelineDepth, index, spec.vnodes.length - 1);
  const vnodes = spec.vnodes.map((v, index): ResolvedVNode => {
    if (known && index !== opts.host) {
      try {
        getVNodeType(v.type);
      } catch {
        const { inFeatures, outFeatures } = known[index];
        if (inFeatures !== features) throw new Error(`vnodes[${index}] (${v.type}): the deployment says ${inFeatures} input features, the chain gives ${features}`);
        features = outFeatures;
        return { index, def: foreignType(v.type, index, index === spec.vnodes.length - 1), config: v.config, inFeatures, outFeatures, depth: depthOf(index) };
      }
    }
    const def = getVNodeType(v.type);
    const isLast = index === spec.vnodes.length - 1;
    if (isLast !== (def.role === 'loss')) {
      throw new Error(`vnodes[${index}] (${v.type}): ${isLast ? 'the last VNode must be a loss' : 'a loss may only be the last VNode'}`);
    }
    const config = def.config.safeParse(v.config);
    if (!config.success) throw new Error(`vnodes[${index}] (${v.type}): invalid config: ${issues(config.error)}`);
    const inFeatures = features;
    const outFeatures = def.outFeatures ? def.outFeatures(config.data, inFeatures) : inFeatures;
    features = outFeatures;
    return { index, def, config: config.data, inFeatures, outFeatures, depth: depthOf(index) };
  });
  const loss = vnodes[vnodes.length - 1];
  if (loss.inFeatures !== shapes.classes) {
    throw new Error(`the loss gets ${loss.inFeatures} features per row, but ${spec.dataset} has ${shapes.classes} classes`);
  }
  return { spec, vnodes, inputFeatures: shapes.features, outputFeatures: shapes.classes };
}
