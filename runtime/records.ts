/**
 * One parser per record type (invariant 7: nothing read is trusted).
 *
 * Every JSON record a DCNR process reads from KV or from a core-NATS subject —
 * ownership records, deployments, the supervisor's view and draining list,
 * heartbeats, cluster events, step metrics, control requests, VNode state metas —
 * is parsed here and nowhere else. Anyone who can reach NATS can write any of them,
 * so a parser never throws: it returns `{ ok: false, error }` with one sentence that
 * says what is wrong, and the caller decides (skip it, log it once, answer it).
 * Tensor messages have their own validator (validate.ts).
 */
import type { KV, KvEntry } from '@nats-io/kv';
import { z } from 'zod';
import type { DeploymentRecord, EpochRecord, OwnershipRecord } from './cluster-state.js';
import { ModelSpec } from './model.js';
import { MESSAGE_KINDS, NAME_PATTERN, parsePort, type MessageKind, type Port, type ClusterEvent, type DrainReply, type DrainRequest, type FaultControlReply, type FaultControlRequest, type Heartbeat, type PNodeHealth, type LeaseRecord, type StepMetric, type SupervisorView } from './protocol.js';
import type { InitialParameters } from './initial-parameters.js';
import type { StateMeta } from './state-store.js';
import { anchorSchema, messageSchema, type AuditReply, type AuditRequest } from './ledger/entry.js';

/** A parsed record, or why it is not one. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const text = new TextDecoder();

/** Bytes (or a string) → JSON → schema, never throwing. */
function parseWith<T>(what: string, schema: z.ZodType<T>, data: Uint8Array | string): Parsed<T> {
  let json: unknown;
  try {
    json = JSON.parse(typeof data === 'string' ? data : text.decode(data));
  } catch {
    return { ok: false, error: `${what}: not JSON` };
  }
  const r = schema.safeParse(json);
  if (r.success) return { ok: true, value: r.data };
  const first = r.error.issues[0];
  return { ok: false, error: `${what}: ${first.path.join('.') || '(root)'}: ${first.message}` };
}

const name = z.string().regex(NAME_PATTERN);
const count = z.number().int().nonnegative();
const time = z.number().finite();

const userKey = z.string().regex(/^U[A-Z2-7]{55}$/, 'an nkey user public key');

const OwnershipSchema: z.ZodType<OwnershipRecord> = z.object({ pnode: name, epoch: count, assignedAt: z.string(), term: count.optional(), handover: name.optional() });

const LeaseSchema: z.ZodType<LeaseRecord> = z.object({ holder: name, pid: count, term: count, renewedAt: time });

const BlobRefSchema = z.object({ key: z.string(), length: count, chunks: count, sha256: z.string().regex(/^[A-Za-z0-9_-]{43}$/).optional() });
const InitialParametersSchema: z.ZodType<InitialParameters> = z.object({
  paramsHash: z.string().regex(/^[0-9a-f]{64}$/),
  source: z.string().max(1000).optional(),
  tensors: z.array(z.record(z.string(), BlobRefSchema)),
});

const DeploymentSchema: z.ZodType<DeploymentRecord> = z.object({
  spec: ModelSpec,
  seed: count,
  batch: z.number().int().positive(),
  steps: z.number().int().positive(),
  createdAt: z.string(),
  shapes: z.array(z.object({ inFeatures: z.number().int().positive(), outFeatures: z.number().int().positive(), stateBytes: z.number().int().nonnegative().optional() })).optional(),
  hostedBy: z.literal('local').optional(),
  trainerKey: userKey.optional(),
  init: InitialParametersSchema.optional(),
});

const EpochSchema: z.ZodType<EpochRecord> = z.object({ pnode: z.string().min(1).max(64), publicKey: userKey });

const CapacitySchema = z.object({
  cores: count,
  memoryMb: count,
  kernelMode: z.string(),
  gflops: z.number().finite().nonnegative(),
  maxVNodes: count,
  types: z.array(z.string()),
});

const CountersSchema = z.object({ fencedWrites: count, rejected: count, restarts: count, escalations: count, activations: count });

const share = z.number().finite().min(0).max(1);
const HealthSchema: z.ZodType<PNodeHealth> = z.object({
  windowMs: z.number().finite().positive(),
  loopLagMs: z.number().finite().nonnegative(),
  gcShare: share,
  heapShare: share,
  freeMemShare: share,
  kernelDrift: z.number().finite().nonnegative(),
});

const HeartbeatSchema: z.ZodType<Heartbeat> = z.object({
  pnode: name,
  pid: count,
  at: time,
  capacity: CapacitySchema,
  vnodes: z.array(z.string()),
  counters: CountersSchema,
  publicKey: userKey.optional(),
  health: HealthSchema.optional(),
});

const ViewSchema: z.ZodType<SupervisorView> = z.object({
  at: time,
  supervisorPid: count,
  leader: z.object({ name, term: count }).optional(),
  pnodes: z.array(
    z.object({
      id: name,
      pid: count,
      alive: z.boolean(),
      draining: z.boolean(),
      capacity: CapacitySchema,
      vnodes: z.array(z.string()),
      lastHeartbeat: time,
      counters: CountersSchema,
      risk: share.optional(),
      riskSignals: z.record(z.string(), share).optional(),
      reputation: z.object({ verified: count, failed: count }).optional(),
      quarantined: z.boolean().optional(),
    }),
  ),
});

const vnode = z.string().min(1).max(200);
const ClusterEventSchema: z.ZodType<ClusterEvent> = z.discriminatedUnion('type', [
  z.object({ type: z.literal('joined'), pnode: name, at: time }),
  z.object({ type: z.literal('dead'), pnode: name, at: time, lastHeartbeat: time }),
  z.object({ type: z.literal('assigned'), vnode, pnode: name, epoch: count, from: name.nullable(), reason: z.string(), at: time }),
  z.object({ type: z.literal('activated'), vnode, pnode: name, epoch: count, at: time, ms: z.number().finite(), replayed: count.optional(), replayMs: z.number().finite().optional(), restoredRevision: count.optional() }),
  z.object({ type: z.literal('released'), vnode, pnode: name, at: time, reason: z.string(), epoch: count.optional(), generation: count.optional(), revision: count.optional() }),
  z.object({ type: z.literal('passivated'), vnode, pnode: name, at: time }),
  z.object({ type: z.literal('fenced'), vnode, pnode: name, epoch: count, at: time, cause: z.enum(['write', 'mailbox', 'activation']) }),
  z.object({ type: z.literal('escalated'), vnode, pnode: name, error: z.string(), at: time }),
  z.object({ type: z.literal('refused'), vnode, pnode: name, error: z.string(), at: time }),
  z.object({ type: z.literal('rejected'), vnode, pnode: name, error: z.string(), at: time }),
  z.object({ type: z.literal('elected'), supervisor: name, pid: count, term: count, at: time }),
  z.object({ type: z.literal('at-risk'), pnode: name, risk: share, signals: z.record(z.string(), share), at: time }),
  z.object({ type: z.literal('recovered-health'), pnode: name, risk: share, at: time }),
  z.object({ type: z.literal('quarantined'), pnode: name, vnode, seq: count, auditor: name, reason: z.string().max(2000), at: time }),
  z.object({ type: z.literal('audited'), vnode, generation: count, from: count, messages: count, pnodes: z.array(name), auditor: name, ok: z.boolean(), at: time }),
  z.object({ type: z.literal('recovered'), pnode: name, vnodes: z.array(vnode), detectMs: z.number().finite(), resumeMs: z.number().finite(), replayed: count.optional(), at: time }),
]);

const StepMetricSchema: z.ZodType<StepMetric> = z.object({ seq: count, loss: z.number().finite(), batch: z.number().int().positive(), vnode: z.string() });

const DrainRequestSchema: z.ZodType<DrainRequest> = z.object({ pnode: name }, { error: 'a drain request is {"pnode": "<id>"}' });

const bounded = (field: string, min: number, max: number) => {
  const error = `${field} must be a number in [${min}, ${max}]`;
  return z.number({ error }).min(min, error).max(max, error).optional();
};
const FaultControlSchema: z.ZodType<FaultControlRequest> = z
  .object({ messageDelayMs: bounded('messageDelayMs', 0, 60_000), kernelSlowdown: bounded('kernelSlowdown', 1, 100), loopBlockMs: bounded('loopBlockMs', 0, 450), corruptGradients: bounded('corruptGradients', 0.5, 2) })
  .strict()
  .refine((r) => Object.keys(r).length > 0, 'a fault-control request sets at least one of messageDelayMs, kernelSlowdown, loopBlockMs, corruptGradients');

const DrainReplySchema: z.ZodType<DrainReply> = z.object({ ok: z.boolean(), pnode: z.string(), moved: z.array(z.string()), error: z.string().optional() });
const FaultControlReplySchema: z.ZodType<FaultControlReply> = z.object({ ok: z.boolean(), pnode: z.string(), messageDelayMs: z.number(), kernelSlowdown: z.number(), loopBlockMs: z.number(), corruptGradients: z.number(), error: z.string().optional() });

const StateMetaSchema: z.ZodType<StateMeta> = z.object({
  format: z.literal(1),
  deployment: name,
  index: count,
  type: z.string(),
  typeVersion: z.number().int().positive(),
  generation: count,
  epoch: count,
  version: count,
  snapshot: z.unknown(),
  tensors: z.record(z.string(), BlobRefSchema),
  stash: z.record(z.string(), z.array(BlobRefSchema)),
  outbox: z
    .array(
      z.object({
        to: count,
        kind: z.enum(MESSAGE_KINDS as [MessageKind, ...MessageKind[]]),
        port: z
          .string()
          .refine((p) => parsePort(p) !== null, 'not a port')
          .transform((p) => p as Port)
          .optional(),
        seq: count,
        shape: z.array(z.number().int().positive()).min(1).max(4).optional(),
        blob: BlobRefSchema.optional(),
      }),
    )
    .optional(),
  ledger: z.object({ count, head: z.string().nullable() }).strict().optional(),
  updatedAt: z.string(),
});

export const parseOwnershipRecord = (d: Uint8Array | string) => parseWith('ownership record', OwnershipSchema, d);
export const parseLeaseRecord = (d: Uint8Array | string) => parseWith('supervisor lease', LeaseSchema, d);
export const parseDeploymentRecord = (d: Uint8Array | string) => parseWith('deployment record', DeploymentSchema, d);
export const parseEpochRecord = (d: Uint8Array | string) => parseWith('epoch record', EpochSchema, d);
export const parseHeartbeat = (d: Uint8Array | string) => parseWith('heartbeat', HeartbeatSchema, d);
export const parseSupervisorView = (d: Uint8Array | string) => parseWith('supervisor view', ViewSchema, d);
export const parseDrainingList = (d: Uint8Array | string) => parseWith('draining list', z.array(name), d);
export const parseClusterEvent = (d: Uint8Array | string) => parseWith('cluster event', ClusterEventSchema, d);
export const parseDrainRequest = (d: Uint8Array | string) => parseWith('drain request', DrainRequestSchema, d);
export const parseFaultControlRequest = (d: Uint8Array | string) => parseWith('fault-control request', FaultControlSchema, d);
export const parseDrainReply = (d: Uint8Array | string) => parseWith('drain reply', DrainReplySchema, d);
export const parseFaultControlReply = (d: Uint8Array | string) => parseWith('fault-control reply', FaultControlReplySchema, d);
export const parseStateMeta = (d: Uint8Array | string) => parseWith('VNode state meta', StateMetaSchema, d);

const AuditRequestSchema: z.ZodType<AuditRequest> = z
  .object({ deployment: name, generation: count, vnode: count, anchor: anchorSchema, messages: z.array(messageSchema).min(1).max(10_000) })
  .strict() as z.ZodType<AuditRequest>;
const AuditReplySchema: z.ZodType<AuditReply> = z
  .object({ ok: z.boolean(), recomputed: count, mismatch: z.object({ seq: count, kind: z.string(), reason: z.string() }).strict().optional(), error: z.string().optional() })
  .strict();
/** A segment to re-execute (runtime/pnode/audit.ts), and an auditor's answer (supervisor/audit.ts). */
export const parseAuditRequest = (d: Uint8Array | string) => parseWith('not an audit request', AuditRequestSchema, d);
export const parseAuditReply = (d: Uint8Array | string) => parseWith('audit reply', AuditReplySchema, d);
/** The supervisor's quarantine list and reputations (`SupervisorKey.quarantined`, `.reputation`). */
export const parseQuarantineList = (d: Uint8Array | string) => parseWith('quarantine list', z.array(name), d);
export const parseReputations = (d: Uint8Array | string) => parseWith('reputations', z.record(z.string(), z.object({ verified: count, failed: count }).strict()), d);

/**
 * A step metric (a loss VNode's record on `Subject.metrics`), or null for anything else:
 * anyone can publish on that subject. With `steps`, seqs outside the run are refused too.
 */
export function parseStepMetric(data: Uint8Array, steps = Number.MAX_SAFE_INTEGER): StepMetric | null {
  const r = parseWith('step metric', StepMetricSchema, data);
  return r.ok && r.value.seq < steps ? r.value : null;
}

/** Told once per bad record (bucket, key, revision) it met: the log line an operator reads. */
export type RejectRecord = (where: string, key: string, revision: number, error: string) => void;

/**
 * A `RejectRecord` that logs each bad record once, however often it is read (a
 * polling loop reads the same bad value many times).
 */
export function rejectOnce(log: (line: string) => void): RejectRecord {
  const seen = new Set<string>();
  return (where, key, revision, error) => {
    const id = `${where}/${key}@${revision}`;
    if (seen.has(id)) return;
    if (seen.size > 10_000) seen.clear(); // a flood of junk must not grow memory forever
    seen.add(id);
    log(`rejected record ${id}: ${error}`);
  };
}

/** A KV entry's value parsed, or null for a delete, a purge, an empty value or a bad record (reported). */
export function parseEntry<T>(e: KvEntry | null, parse: (d: Uint8Array) => Parsed<T>, reject?: RejectRecord): T | null {
  if (!e || e.operation !== 'PUT' || e.length === 0) return null;
  const r = parse(e.value);
  if (r.ok) return r.value;
  reject?.(e.bucket, e.key, e.revision, r.error);
  return null;
}

/** Read and parse one KV record with its revision; null when absent or bad (reported). */
export async function readRecord<T>(kv: KV, key: string, parse: (d: Uint8Array) => Parsed<T>, reject?: RejectRecord): Promise<{ value: T; revision: number } | null> {
  const e = await kv.get(key);
  const value = parseEntry(e, parse, reject);
  return value === null ? null : { value, revision: e!.revision };
}
