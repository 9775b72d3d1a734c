/**
 * The scenario runner: a fresh private cluster, a fault-free baseline of the same
 * seed, then the same training with the faults injected at their steps; then the
 * checks, the report, and everything stopped. Beside it: cluster.ts (the private
 * cluster), inject.ts (faults at their steps), watchdog.ts (a run that cannot go on
 * stops with a reason), measure.ts (what is read off the run), checks.ts, report.ts.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import '../../actors/index.js';
import { connectNats } from '../../cluster/process.js';
import { readView, waitForPNodes } from '../../cluster/view.js';
import { openBuckets, readDeployment, subscribeClusterEvents } from '../../runtime/cluster-state.js';
import { createKernels } from '../../runtime/kernels/index.js';
import type { Kernels } from '../../runtime/kernels/types.js';
import { verifyLedger } from '../../runtime/ledger/verify.js';
import { stateAuthOf } from '../../runtime/security/verifier.js';
import { chunkBytesFor, StateStore } from '../../runtime/state-store.js';
import { jetstreamManager } from '@nats-io/jetstream';
import { loadModelSpec, resolveModel, withOverrides } from '../../runtime/model.js';
import { runFeeders } from '../../cluster/feeders.js';
import { writeShards } from '../../trainer/shards.js';
import type { ClusterEvent } from '../../runtime/protocol.js';
import { createRng } from '../../runtime/rng.js';
import { train, type Rollback, type TrainResult } from '../../trainer/train.js';
import { NO_SENDER_RECORD } from '../../runtime/security/verifier.js';
import { FAULT_KINDS } from '../faults/index.js';
import type { ClusterNeeds, FaultContext } from '../faults/types.js';
import { judge } from './checks.js';
import { startScenarioCluster, type ScenarioCluster } from './cluster.js';
import type { Scenario } from './define.js';
import { scheduleFaults, type Injector } from './inject.js';
import { countUpdates, expectedUpdates, deadLettered, deadLetters, diagnoseStall, pickPNodes, recoveredPNodes } from './measure.js';
import { lossSvg, type LedgerSummary, type ScenarioReport } from './report.js';
import { startServingLoad } from './serve-load.js';
import { startWatchdog } from './watchdog.js';

export interface RunOptions {
  /** Overrides the scenario's seed. */
  seed?: number;
  /** Where `<scenario>-<time>/report.json` and `loss.svg` go. @default 'reports' */
  reportsDir?: string;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Overrides the model's checkpoint interval (`--checkpoint-every`; 1 = commit every message). */
  checkpointEvery?: number;
  /** Overrides the scenario's model (`--model`): the same faults at the same steps on another model. */
  model?: string;
  /** Overrides the scenario's batch size (`--batch`). */
  batch?: number;
  /** Overrides the scenario's steps (`--steps`): every fault must still fire before the end. */
  steps?: number;
  /** Keep a ledger and verify it after the faulted run, every update re-executed (docs/ledger.md). @default true */
  ledger?: boolean;
}

export async function runScenario(given: Scenario, o: RunOptions = {}): Promise<ScenarioReport> {
  const scenario: Scenario = { ...given, spec: { ...given.spec, model: o.model ?? given.spec.model, batch: o.batch ?? given.spec.batch, steps: o.steps ?? given.spec.steps } };
  const { spec } = scenario;
  if (o.steps !== undefined) {
    const late = spec.faults.find((f) => f.atStep >= spec.steps);
    if (late) throw new Error(`--steps ${spec.steps}: ${spec.name}'s ${late.kind} fires at step ${late.atStep}, past the end of the run; give more steps`);
    if (spec.federation && spec.steps % spec.federation.syncEvery !== 0) throw new Error(`--steps ${spec.steps}: ${spec.name} is federated with a round every ${spec.federation.syncEvery} steps; give a multiple of it`);
  }
  const seed = o.seed ?? spec.seed;
  const log = o.log ?? (() => {});
  const started = Date.now();
  const kinds = spec.faults.map((f) => {
    const k = FAULT_KINDS[f.kind];
    if (!k) throw new Error(`scenario ${spec.name}: unknown fault kind ${JSON.stringify(f.kind)} (known: ${Object.keys(FAULT_KINDS).join(', ')})`);
    return k;
  });
  const needs: ClusterNeeds = Object.assign({}, ...kinds.map((k) => k.needs ?? {}), spec.auditShare !== undefined ? { auditShare: spec.auditShare } : {});
  // A served scenario keeps versions often enough to serve one early (not part of the math).
  const ledger = o.ledger ?? true;
  const base = withOverrides(loadModelSpec(spec.model), { checkpointEvery: o.checkpointEvery, versionEvery: spec.serve?.versionEvery, ledger });
  const model = resolveModel(spec.federation ? { ...base, federation: { ...spec.federation, rounds: spec.steps / spec.federation.syncEvery } } : base);
  const dir = mkdtempSync(join(tmpdir(), `dcnr-scenario-${spec.name}-`));

  log(`starting a private cluster: ${spec.pnodes} PNodes${needs.natsCluster ? ', 3-node NATS cluster (R3)' : ''}${needs.proxy ? ', PNodes behind TCP proxies' : ''}`);
  let cluster: ScenarioCluster | undefined;
  let nc: NatsConnection | undefined;
  let keepLogs: string | undefined;
  try {
    cluster = await startScenarioCluster({ pnodes: spec.pnodes, dir, detectMs: spec.detectMs, needs });
    nc = await connectNats(cluster.url, `dcnr-scenario-${spec.name}`);
    await waitForPNodes(nc, spec.pnodes, 120_000);
    const kernels = await createKernels();
    // A federated run's replicas are fed by their own processes, each from its own shard (cluster/feeders.ts).
    const shards = model.federation && writeShards(join(dir, 'shards'), model.spec.dataset, model.federation.replicas, seed);
    const url = cluster.url;
    const feedReplicas = shards ? { feedReplicas: (signal: AbortSignal | undefined) => runFeeders({ url, deployment: model.spec.name, shards, signal }) } : {};
    const run = (extra: Partial<Parameters<typeof train>[0]>) => train({ nc: nc!, model, steps: spec.steps, batch: spec.batch, seed, kernels, ...feedReplicas, ...extra });

    log(`baseline: ${spec.steps} steps × batch ${spec.batch}, seed ${seed}, no faults …`);
    const baseline = await run({});
    log(`baseline: paramsHash ${baseline.paramsHash.slice(0, 16)}…, loss ${baseline.finalLoss.toFixed(4)}`);

    // From here on, what happens is the faulted run's.
    const baselineGeneration = (await readDeployment((await openBuckets(nc)).deployments, model.spec.name))?.generation ?? -1;
    const load = spec.serve && startServingLoad({ nc, model, kernels, notGeneration: baselineGeneration, concurrency: spec.serve.concurrency, log });
    const { events, injector, result, trainError, expectDead } = await faultedRun(scenario, seed, cluster, nc, model, run, log);
    const serving = load ? await load.stop(injector.injected[0]?.at, lastRecovery(events)) : undefined;
    // A fresh view with a live PNode, within 15 s: right after a NATS restart the first
    // view the supervisor writes may still count everyone silent (they reconnect too).
    const view = await waitForPNodes(nc, 1, 15_000).catch(() => readView(nc!).catch(() => null));
    const report = await reportOf(scenario, seed, { nc, model, baseline, result, trainError, events, injector, cluster });
    if (serving) report.serving = serving;
    if (ledger && result) {
      log('ledger: verifying the faulted run, every update re-executed …');
      report.ledger = await ledgerSummary(nc, model, kernels);
      log(`ledger: ${report.ledger.verified ? 'verified' : 'NOT verified'}, ${report.ledger.entries} messages, ${report.ledger.recomputed} re-executed`);
    }
    judge(report, scenario, {
      trainError,
      faultErrors: injector.errors,
      faultsPlanned: spec.faults.length,
      expectDead,
      recovered: recoveredPNodes(events),
      injectedMessages: injector.injected.reduce((s, f) => s + (f.injectedMessages ?? 0), 0),
      alive: view ? view.pnodes.filter((p) => p.alive).length : 0,
      ...(result?.rollbacks?.length ? { staleRejections: await staleRejections(nc, model.spec.name, result.rollbacks) } : {}),
    });
    report.durationMs = Date.now() - started;

    const out = resolve(o.reportsDir ?? 'reports', `${spec.name}-${new Date(started).toISOString().replace(/[:.]/g, '-')}`);
    mkdirSync(out, { recursive: true });
    report.reportDir = out;
    writeFileSync(join(out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(join(out, 'loss.svg'), lossSvg(report));
    keepLogs = join(out, 'logs');
    return report;
  } finally {
    await nc?.close().catch(() => {});
    await cluster?.stop();
    // Every process's log goes with the report: what a person debugging a failure reads first.
    if (keepLogs) {
      try {
        cpSync(join(dir, 'logs'), keepLogs, { recursive: true });
        for (const [i, s] of (cluster?.nats ?? []).entries()) cpSync(s.logFile, join(keepLogs, `nats-${i + 1}.log`));
      } catch {
        // no logs to keep (the cluster never started)
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The faulted run's ledger, verified whole (the deployment's current generation is the faulted run's). */
async function ledgerSummary(nc: NatsConnection, model: ReturnType<typeof resolveModel>, kernels: Kernels): Promise<LedgerSummary> {
  try {
    const buckets = await openBuckets(nc);
    const record = await readDeployment(buckets.deployments, model.spec.name);
    if (!record) throw new Error('the deployment record is gone');
    const auth = await stateAuthOf(nc);
    const store = new StateStore(buckets.state, { chunkBytes: chunkBytesFor(nc), auth });
    const r = await verifyLedger({ jsm: await jetstreamManager(nc), store, model, generation: record.generation, kernels, sample: 1, ownerKey: auth?.ownerKey });
    const contributions = Object.fromEntries(Object.entries(r.contributions).map(([p, c]) => [p, { updates: c.updates, computeMs: c.computeMs }]));
    return { verified: r.verified, entries: r.entries, updates: r.updates, recomputed: r.recomputed, chainOk: r.chainOk, signaturesOk: r.signaturesOk, orphans: r.orphans, unverifiable: r.unverifiable, mismatches: r.mismatches.slice(0, 10), contributions };
  } catch (err) {
    return { verified: false, entries: 0, updates: 0, recomputed: 0, chainOk: false, signaturesOk: false, orphans: 0, unverifiable: 0, mismatches: [], contributions: {}, error: `could not verify: ${(err as Error).message}` };
  }
}

/** byzantine-pnode's account for the report: when the liar was caught, and whether the run was rolled back past its work. */
function byzantineOf(injector: Injector, result: TrainResult | undefined): Pick<ScenarioReport, 'byzantine'> {
  const b = injector.injected.find((f) => f.byzantine)?.byzantine;
  if (!b) return {};
  return { byzantine: { detectedAtStep: b.detectedAtStep, stepsToDetect: b.stepsToDetect, quarantined: b.quarantined, rolledBack: (result?.rollbacks ?? []).some((x) => x.cause === 'quarantine'), ownedVNodes: b.ownedVNodes, segmentSteps: b.segmentSteps } };
}


/**
 * After a rollback, the rejections that belong to the runs it replaced: those their own
 * VNodes made (a nats-server that lost acknowledged writes leaves them gaps to refuse:
 * what the rollback repairs), and the final run's refusals of messages whose sender it
 * has no record of (the old runs' VNodes still sending). Not the baseline's, nor any
 * other refusal of the final run.
 */
async function staleRejections(nc: NatsConnection, deployment: string, rollbacks: Rollback[]): Promise<number> {
  const replaced = new Set(rollbacks.flatMap((b) => (b.generation !== undefined ? [b.generation] : [])));
  const current = (await readDeployment((await openBuckets(nc)).deployments, deployment))?.generation;
  return (await deadLetters(nc, deployment)).filter((d) => (d.generation !== null && replaced.has(d.generation)) || (d.generation === current && d.reason.includes(NO_SENDER_RECORD))).length;
}

/** When the last PNode declared dead had its VNodes resumed elsewhere. */
const lastRecovery = (events: ClusterEvent[]) =>
  events.reduce<number | undefined>((t, e) => (e.type === 'recovered' ? Math.max(t ?? 0, e.at) : t), undefined);

/** The training run with the faults injected at their steps, watched; then the recoveries awaited. */
async function faultedRun(
  scenario: Scenario,
  seed: number,
  cluster: ScenarioCluster,
  nc: NatsConnection,
  model: ReturnType<typeof resolveModel>,
  run: (extra: Partial<Parameters<typeof train>[0]>) => Promise<TrainResult>,
  log: (line: string) => void,
) {
  const { spec } = scenario;
  const events: ClusterEvent[] = [];
  const sub = subscribeClusterEvents(nc, (e) => void events.push(e));
  cluster.exits.length = 0;
  // The PNode picker seeds itself with how many faults came before: a context needs the
  // injector, which needs the context.
  let injector: Injector | undefined;
  const ctx: FaultContext = {
    cluster,
    nc,
    deployment: model.spec.name,
    model,
    rng: createRng(`scenario:${spec.name}:${seed}`),
    detectMs: spec.detectMs,
    log,
    authority: cluster.authority,
    pickPNodes: (target) => pickPNodes(nc, target, createRng(`pick:${spec.name}:${seed}:${injector?.injected.length ?? 0}`)),
  };
  const faults = (injector = scheduleFaults(spec.faults, ctx, log));
  const watchdog = startWatchdog(nc, spec.faults.reduce((s, f) => s + (f.durationMs ?? 5000) * 2, 0));
  let result: TrainResult | undefined;
  let trainError: string | undefined;
  log(`faulted run: ${spec.faults.map((f) => `${f.kind}@${f.atStep}`).join(', ')} …`);
  try {
    result = await run({
      signal: watchdog.signal,
      onProgress: ({ done }) => {
        watchdog.progressed();
        faults.progress(done);
      },
    });
  } catch (err) {
    trainError = (err as Error).message;
    log(`faulted run stopped: ${trainError}`);
    for (const line of await diagnoseStall(nc, model).catch((e) => [`(no diagnosis: ${(e as Error).message})`])) log(`  ${line}`);
    for (const e of events) if (['activated', 'fenced', 'escalated'].includes(e.type) && e.at >= (faults.injected[0]?.at ?? 0)) log(`  event ${JSON.stringify(e)}`);
  } finally {
    watchdog.stop();
  }
  await faults.settle();

  // Recoveries finish after the last loss sometimes: give the supervisor a moment.
  const expectDead = [...new Set(faults.injected.flatMap((f) => f.expectDead))];
  for (const deadline = Date.now() + 15_000; !trainError && Date.now() < deadline && expectDead.some((p) => !recoveredPNodes(events).has(p)); ) await sleep(200);
  sub.unsubscribe();

  return { events, injector: faults, result, trainError, expectDead };
}

/** The report's measured fields (checks come after). */
async function reportOf(
  scenario: Scenario,
  seed: number,
  r: { nc: NatsConnection; model: ReturnType<typeof resolveModel>; baseline: TrainResult; result?: TrainResult; trainError?: string; events: ClusterEvent[]; injector: Injector; cluster: ScenarioCluster },
): Promise<ScenarioReport> {
  const { spec } = scenario;
  const expected = expectedUpdates(r.model, spec.steps);
  return {
    scenario: spec.name,
    description: spec.description,
    passed: false,
    reason: '',
    seed,
    model: r.model.spec.name,
    batch: spec.batch,
    steps: spec.steps,
    pnodes: spec.pnodes,
    checks: [],
    // What a fault did, less what only the runner needs (whom to expect dead; attacks are tallied below).
    faults: r.injector.injected.map(({ expectDead: _dead, attacks: _attacks, injectedMessages, ...f }) => ({ ...f, ...(injectedMessages ? { injectedMessages } : {}) })),
    recovery: r.events.flatMap((e) => (e.type === 'recovered' ? [{ pnode: e.pnode, detectMs: e.detectMs, resumeMs: e.resumeMs, vnodes: e.vnodes.length, replayed: e.replayed ?? 0 }] : [])),
    // A stopped run counts too (what its checkpoints applied), unless the store cannot be read.
    updates: await countUpdates(r.nc, r.model, spec.steps).catch(() => ({ expected, applied: 0, lost: expected, duplicated: 0 })),
    fencedWrites: r.events.filter((e) => e.type === 'fenced' && e.cause === 'write').length,
    rejectedMessages: await deadLettered(r.nc, r.model.spec.name),
    attacks: (() => {
      const list = r.injector.injected.flatMap((f) => f.attacks ?? []);
      return { attempted: list.length, refused: list.filter((a) => a.refused).length, list };
    })(),
    crashes: r.cluster.exits.filter((x) => !x.expected).map(({ name, code, signal }) => ({ name, code, signal })),
    ...byzantineOf(r.injector, r.result),
    ...(r.result?.rollbacks?.length ? { rollbacks: r.result.rollbacks.map(({ atStep, cause, detail }) => ({ atStep, cause, detail })) } : {}),
    paramsHash: r.result?.paramsHash ?? null,
    baselineParamsHash: r.baseline.paramsHash,
    identical: r.result?.paramsHash === r.baseline.paramsHash,
    finalLoss: r.result?.finalLoss ?? null,
    baselineFinalLoss: r.baseline.finalLoss,
    losses: r.result?.losses ?? [],
    durationMs: 0,
  };
}
