/**
 * Model specs: a model is a graph of VNodes, ending in a loss. Each VNode names its
 * inputs (by default the VNode before it; the first reads the dataset), so a spec can
 * fan out (several VNodes read one output) and merge (`merge.add` reads several). A
 * spec is data (a JSON file or a built-in name); `resolveModel` validates it against the
 * registered VNode types, wires the graph and computes every VNode's shapes.
 *
 * VNodes are listed so that every input comes before the VNode that reads it (so a
 * cycle cannot be written), and the list order is the index order of everything else:
 * subjects, KV keys, `paramsHash`. The gradients a VNode gets from several consumers
 * are summed in its `consumers` order (by consumer index, then input slot), left to
 * right, whatever the placement and timing (invariant 3).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { bwdPort, MAX_PORT_SLOTS, NAME_PATTERN, type Port } from './protocol.js';
import { getVNodeType } from './registry.js';
import { vnodeDepth } from './schedule.js';
import type { VNodeType } from './vnode-type.js';
import { federate, FederationSpec, type FederatedPart, type Federation } from './federated/federation.js';

export const ModelSpec = z
  .object({
    /** Deployment name: subject tokens and KV keys use it. */
    name: z.string().regex(NAME_PATTERN, 'name must be 1-64 of A-Z a-z 0-9 _ -'),
    /**
     * The dataset the trainer feeds (docs/datasets.md): `mnist` (the bundled digits),
     * `names` (English first names, characters) or `text:PATH` (one example per line
     * of a UTF-8 file on the trainer's machine). @default 'mnist'
     */
    dataset: z
      .union([z.literal('mnist'), z.literal('names'), z.string().regex(/^text:.+/, 'dataset must be mnist, names or text:PATH')])
      .default('mnist'),
    /** Tokens per window of a text dataset (`names`, `text:PATH`): the model's sequence length. @default 16 */
    context: z.number().int().min(1).max(1024).optional(),
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
    /**
     * Steps between two served versions of the parameters (docs/serving.md): every VNode
     * with parameters keeps its parameters after each multiple of this update, and after
     * its last, for `dcnr serve` / `dcnr export --version`. Not part of the math. @default 100
     */
    versionEvery: z.number().int().min(1).max(1_000_000).optional(),
    /**
     * Keep a ledger of every applied update (docs/ledger.md): each checkpoint stores an
     * entry with a digest per message it covers, hash-chained per VNode and signed, and
     * the inputs it applied as evidence, so `dcnr ledger verify` can re-execute them.
     * Not part of the math. @default false
     */
    ledger: z.boolean().optional(),
    /**
     * Federated data-parallel rounds (docs/federated.md): `replicas` copies of the graph,
     * each fed by its own data owner, their layers synchronised through an aggregator
     * every `syncEvery` updates with compressed updates. Part of the math. @default none
     */
    federation: FederationSpec.optional(),
    vnodes: z
      .array(
        z
          .object({
            type: z.string(),
            /** A name other VNodes' `inputs` may use (unique in the model; `input` is the dataset). */
            name: z.string().regex(NAME_PATTERN, 'name must be 1-64 of A-Z a-z 0-9 _ -').optional(),
            /**
             * What this VNode reads, in order: names or indices of earlier VNodes, or
             * `input` (the dataset; the first VNode only). @default the previous VNode
             * (`input` for the first). More than one only for a merge (`merge.add`).
             */
            inputs: z.array(z.union([z.string(), z.number().int().min(0)])).min(1).max(MAX_PORT_SLOTS).optional(),
            config: z.record(z.string(), z.unknown()).default({}),
          })
          .strict(),
      )
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

/** Steps between served parameter versions when a spec does not say. */
export const DEFAULT_VERSION_EVERY = 100;

/** Run-time settings a command line may override in a spec. */
export interface SpecOverrides {
  pipelineDepth?: number;
  checkpointEvery?: number;
  checkpointMs?: number;
  versionEvery?: number;
  ledger?: boolean;
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
  /** Its `name` in the spec, else its index as text. */
  name: string;
  def: VNodeType;
  config: unknown;
  inFeatures: number;
  outFeatures: number;
  /** This VNode's pipeline depth (schedule.ts `vnodeDepth`): part of the math. */
  depth: number;
  /** The producers of its inputs, in slot order (input slot j arrives on `fwdPort(j)`); -1 = the dataset. */
  inputs: number[];
  /**
   * The VNodes that read its output, each with the input slot it reads it on, sorted by
   * consumer index then slot: consumer c sends its gradient on `bwdPort(c)`, and the
   * gradients are summed in this order. Empty for the loss.
   */
  consumers: Array<{ index: number; slot: number }>;
  /** Per input slot j: the port of producer `inputs[j]` its gradient goes to (unused for the dataset). */
  gradPorts: Port[];
  /** Its part in a federated deployment (runtime/federated/federation.ts): its replica, its rounds, its aggregator. */
  fed?: FederatedPart;
}

export interface ResolvedModel {
  spec: ModelSpec;
  vnodes: ResolvedVNode[];
  /** Last axis of the first VNode's input: pixels (mnist), or token ids per window (text). */
  inputFeatures: number;
  /** Last axis of the loss's input: classes, or the vocabulary of a text dataset. */
  outputFeatures: number;
  /** Last axis of the loss's targets: one-hot classes (mnist), or the window's token ids (text: class ids, rank 2). */
  targetFeatures: number;
  /** A federated deployment (spec `federation`): its settings and the model of one replica. */
  federation?: Federation;
}

/** Is the dataset text (a language model: token ids in, next-token ids as targets)? */
export const isTextDataset = (spec: Pick<ModelSpec, 'dataset'>): boolean => spec.dataset !== 'mnist';
/** Tokens per window of a text dataset. */
export const DEFAULT_CONTEXT = 16;
export const contextOf = (spec: Pick<ModelSpec, 'context'>): number => spec.context ?? DEFAULT_CONTEXT;

/**
 * One pre-LayerNorm transformer block reading the VNode named `from` and naming its
 * output `to`: LN → attention → + from, then LN → dense 4× → GELU → dense → + that.
 */
function transformerBlock(from: string, to: string, width = 64, heads = 4): ModelSpec['vnodes'] {
  return [
    { type: 'layer.layerNorm', inputs: [from], config: {} },
    { type: 'layer.attention', name: `${to}_attn`, config: { heads } },
    { type: 'merge.add', name: `${to}_mid`, inputs: [from, `${to}_attn`], config: {} },
    { type: 'layer.layerNorm', config: {} },
    { type: 'layer.dense', config: { units: 4 * width, init: 'xavier' } },
    { type: 'activation.gelu', config: {} },
    { type: 'layer.dense', name: `${to}_mlp`, config: { units: width, init: 'xavier' } },
    { type: 'merge.add', name: to, inputs: [`${to}_mid`, `${to}_mlp`], config: {} },
  ];
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
  /**
   * A small decoder-only transformer on `names` (character level): token + position
   * embeddings of width 64, 2 pre-LayerNorm blocks of causal 4-head attention and a
   * 256-wide GELU MLP, each with its residual `merge.add`, a final LayerNorm and a dense
   * head to the 27 tokens; context 16; Adam 1e-3. 0.1M parameters, 20 VNodes
   * (docs/names-gpt.md).
   */
  'names-gpt': {
    name: 'names-gpt',
    dataset: 'names',
    context: 16,
    pipelineDepth: 2,
    vnodes: [
      { type: 'layer.embedding', name: 'x0', config: { vocab: 27, width: 64, context: 16 } },
      ...transformerBlock('x0', 'x1'),
      ...transformerBlock('x1', 'x2'),
      { type: 'layer.layerNorm', config: {} },
      { type: 'layer.dense', config: { units: 27, init: 'xavier' } },
      { type: 'loss.softmaxCrossEntropy', config: {} },
    ],
  },
};


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

/**
 * A VNode's estimated bytes in memory when it trains at `batch` (`VNodeType.stateBytes`).
 * Types see `batch` as rows of their activations viewed as [rows, features]: for a text
 * model, every position of every window (batch × context).
 */
export function stateBytesOf(v: ResolvedVNode, batch: number, spec?: Pick<ModelSpec, 'dataset' | 'context'>): number {
  const depth = Math.max(1, v.depth);
  const rows = spec && isTextDataset(spec) ? batch * contextOf(spec) : batch;
  const bytes = v.def.stateBytes
    ? v.def.stateBytes({ config: v.config as never, inFeatures: v.inFeatures, outFeatures: v.outFeatures, batch: rows, depth })
    : depth * rows * v.inFeatures * 4;
  return Math.max(0, Math.round(bytes));
}

/**
 * A VNode type this process does not know, standing in a model resolved for hosting
 * other VNodes of it (`resolveModel(spec, { shapes, host })`): it has the id, and
 * anything that would run it throws. Placement never gives such a VNode to this process.
 */
function foreignType(type: string, role: VNodeType['role']): VNodeType {
  const refuse = async (): Promise<never> => {
    throw new Error(`VNode type ${type} is not known in this process`);
  };
  const common = { type, version: 0, description: 'not known here', config: { safeParse: () => ({ success: true, data: {} }) } as never };
  if (role === 'loss') return { ...common, role, loss: refuse };
  if (role === 'merge') return { ...common, role, forward: refuse, backward: refuse };
  return { ...common, role, forward: refuse, backward: refuse };
}

/** Is this VNode's type one this process knows (not a stand-in)? */
export const isKnownType = (v: ResolvedVNode): boolean => v.def.version > 0;

/** Where a spec's VNode reads from: -1 the dataset, else an earlier VNode's index (throws on a bad reference, naming the field). */
export function wireInputs(spec: ModelSpec): number[][] {
  const byName = new Map<string, number>();
  spec.vnodes.forEach((v, index) => {
    if (v.name === undefined) return;
    if (v.name === 'input') throw new Error(`vnodes[${index}].name: "input" is reserved for the dataset`);
    const taken = byName.get(v.name);
    if (taken !== undefined) throw new Error(`vnodes[${index}].name: ${JSON.stringify(v.name)} is already the name of vnodes[${taken}]`);
    byName.set(v.name, index);
  });
  return spec.vnodes.map((v, index) => {
    const refs = v.inputs ?? [index === 0 ? 'input' : index - 1];
    return refs.map((ref, slot) => {
      const field = `vnodes[${index}].inputs[${slot}]`;
      if (ref === 'input') {
        if (index !== 0) throw new Error(`${field}: only the first VNode reads the dataset ("input"); feed it to others through it`);
        return -1;
      }
      const from = typeof ref === 'number' ? ref : byName.get(ref);
      if (from === undefined) throw new Error(`${field}: no VNode is named ${JSON.stringify(ref)} (names: ${[...byName.keys()].join(', ') || 'none'})`);
      if (from >= index) {
        throw new Error(`${field}: ${JSON.stringify(ref)} is not an earlier VNode: list every VNode after the ones it reads (a cycle cannot be listed so, and is not allowed)`);
      }
      return from;
    });
  });
}

/**
 * Check a spec against the registered types, wire its graph and compute shapes. With
 * `shapes` (what the deploying process computed, kept in the deployment record), a
 * VNode of a type this process does not know is resolved as a stand-in with those
 * shapes — except `host`, the one it is asked to run — so a PNode can host the VNodes of
 * a model whose other types only other PNodes know.
 */
export function resolveModel(input: unknown, opts: { shapes?: VNodeShapes; host?: number } = {}): ResolvedModel {
  const parsed = ModelSpec.safeParse(input);
  if (!parsed.success) throw new Error(`invalid model spec: ${issues(parsed.error)}`);
  const spec = parsed.data;
  if (!spec.federation) return resolveGraph(spec, opts);
  // Federated: the graph of one replica, copied (runtime/federated/federation.ts). Shapes and the hosted index are the base's.
  const N = spec.vnodes.length;
  const base = resolveGraph(spec, {
    ...(opts.shapes ? { shapes: opts.shapes.slice(0, N) } : {}),
    ...(opts.host !== undefined && opts.host < spec.federation.replicas * N ? { host: opts.host % N } : {}),
  });
  return federate(base, spec.federation);
}

function resolveGraph(spec: ModelSpec, opts: { shapes?: VNodeShapes; host?: number }): ResolvedModel {
  // A text dataset's vocabulary is known once its data is loaded (the trainer checks it): here, the loss's width.
  const text = isTextDataset(spec);
  const shapes = text ? { features: contextOf(spec), classes: undefined } : { features: 784, classes: 10 };
  const known = opts.shapes && opts.shapes.length === spec.vnodes.length ? opts.shapes : undefined;
  const inputs = wireInputs(spec);
  const last = spec.vnodes.length - 1;
  if (inputs[0].length !== 1 || inputs[0][0] !== -1) throw new Error('vnodes[0].inputs: the first VNode reads the dataset: ["input"]');

  // Consumers, in the order their gradients are summed: by consumer index, then slot.
  const consumers: Array<Array<{ index: number; slot: number }>> = spec.vnodes.map(() => []);
  inputs.forEach((from, index) => from.forEach((p, slot) => p >= 0 && consumers[p].push({ index, slot })));
  consumers.forEach((c, index) => {
    if (index !== last && c.length === 0) throw new Error(`vnodes[${index}] (${spec.vnodes[index].type}): its output goes nowhere (no later VNode lists it in its inputs)`);
    if (c.length > MAX_PORT_SLOTS) throw new Error(`vnodes[${index}] (${spec.vnodes[index].type}): read by ${c.length} VNodes, at most ${MAX_PORT_SLOTS}`);
  });
  // Hops: the longest path to the loss (every non-loss VNode has a later consumer, so every path ends there).
  const hops: number[] = spec.vnodes.map(() => 0);
  for (let k = last - 1; k >= 0; k--) hops[k] = 1 + Math.max(...consumers[k].map((c) => hops[c.index]));

  const features: number[] = [];
  const featuresOf = (p: number) => (p < 0 ? shapes.features : features[p]);
  const vnodes = spec.vnodes.map((v, index): ResolvedVNode => {
    const isLast = index === last;
    const from = inputs[index];
    const wiring = {
      index,
      name: v.name ?? String(index),
      depth: vnodeDepth(spec.pipelineDepth, hops[index], hops[0]),
      inputs: from,
      consumers: consumers[index],
      gradPorts: from.map((p, slot) => (p < 0 ? bwdPort(0) : bwdPort(consumers[p].findIndex((c) => c.index === index && c.slot === slot)))),
    };
    const inFeatures = featuresOf(from[0]);
    for (let slot = 1; slot < from.length; slot++) {
      if (featuresOf(from[slot]) !== inFeatures) {
        throw new Error(`vnodes[${index}].inputs: ${v.type} needs inputs of one shape; inputs[0] gives ${inFeatures} features per row, inputs[${slot}] gives ${featuresOf(from[slot])}`);
      }
    }
    if (known && index !== opts.host) {
      try {
        getVNodeType(v.type);
      } catch {
        const k = known[index];
        if (k.inFeatures !== inFeatures) throw new Error(`vnodes[${index}] (${v.type}): the deployment says ${k.inFeatures} input features, the graph gives ${inFeatures}`);
        features[index] = k.outFeatures;
        const role = isLast ? 'loss' : from.length > 1 ? 'merge' : index === 0 ? 'layer' : 'activation';
        return { ...wiring, def: foreignType(v.type, role), config: v.config, inFeatures, outFeatures: k.outFeatures };
      }
    }
    const def = getVNodeType(v.type);
    if (isLast !== (def.role === 'loss')) {
      throw new Error(`vnodes[${index}] (${v.type}): ${isLast ? 'the last VNode must be a loss' : 'a loss may only be the last VNode'}`);
    }
    if (def.role === 'merge' ? from.length < 2 : from.length !== 1) {
      throw new Error(
        `vnodes[${index}].inputs: ${v.type} ${def.role === 'merge' ? 'merges two or more inputs' : 'reads one input (merge several with merge.add)'}, the spec gives ${from.length}`,
      );
    }
    const config = def.config.safeParse(v.config);
    if (!config.success) throw new Error(`vnodes[${index}] (${v.type}): invalid config: ${issues(config.error)}`);
    const outFeatures = def.outFeatures ? def.outFeatures(config.data, inFeatures) : inFeatures;
    features[index] = outFeatures;
    return { ...wiring, def, config: config.data, inFeatures, outFeatures };
  });
  const loss = vnodes[last];
  if (shapes.classes !== undefined && loss.inFeatures !== shapes.classes) {
    throw new Error(`the loss gets ${loss.inFeatures} features per row, but ${spec.dataset} has ${shapes.classes} classes`);
  }
  return { spec, vnodes, inputFeatures: shapes.features, outputFeatures: loss.inFeatures, targetFeatures: text ? shapes.features : loss.inFeatures };
}

/** A VNode's inputs and consumers (schedule.ts): what its machine's schedule counts per step. */
export const arityOf = (v: ResolvedVNode) => ({ inputs: v.inputs.length, consumers: v.consumers.length });
