/**
 * Model specs: a model is a chain of VNodes, ending in a loss. A spec is data (a
 * JSON file or a built-in name); `resolveModel` validates it against the registered
 * VNode types and computes every VNode's shapes.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { NAME_PATTERN } from './protocol.js';
import { getVNodeType } from './registry.js';
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
    vnodes: z
      .array(z.object({ type: z.string(), config: z.record(z.string(), z.unknown()).default({}) }).strict())
      .min(2, 'a model needs at least one layer and a loss'),
  })
  .strict();
export type ModelSpec = z.infer<typeof ModelSpec>;

/** One VNode of a resolved model. */
export interface ResolvedVNode {
  index: number;
  def: VNodeType;
  config: unknown;
  inFeatures: number;
  outFeatures: number;
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

/** Check a spec against the registered types and compute shapes. */
export function resolveModel(input: unknown): ResolvedModel {
  const parsed = ModelSpec.safeParse(input);
  if (!parsed.success) throw new Error(`invalid model spec: ${issues(parsed.error)}`);
  const spec = parsed.data;
  const shapes = DATASET_SHAPES[spec.dataset];
  let features: number = shapes.features;
  const vnodes = spec.vnodes.map((v, index): ResolvedVNode => {
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
    return { index, def, config: config.data, inFeatures, outFeatures };
  });
  const loss = vnodes[vnodes.length - 1];
  if (loss.inFeatures !== shapes.classes) {
    throw new Error(`the loss gets ${loss.inFeatures} features per row, but ${spec.dataset} has ${shapes.classes} classes`);
  }
  return { spec, vnodes, inputFeatures: shapes.features, outputFeatures: shapes.classes };
}
