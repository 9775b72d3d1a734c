/**
 * The scenario runner: a fresh private cluster, a fault-free baseline of the same
 * seed, then the same training with the faults injected at their steps; then the
 * checks, the report, and everything stopped.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import '../../actors/index.js';
import { readView, waitForPNodes } from '../../cli/cluster.js';
import { openBuckets, subscribeClusterEvents } from '../../runtime/cluster-state.js';
import { createKernels } from '../../runtime/kernels/index.js';
import { loadModelSpec, resolveModel, type ResolvedModel } from '../../runtime/model.js';
import { Stream, Subject, type ClusterEvent } from '../../runtime/protocol.js';
import { createRng } from '../../runtime/rng.js';
import { StateStore } from '../../runtime/state-store.js';
import { chunkBytesFor, train, type TrainResult } from '../../runtime/trainer.js';
import { readProgress } from '../../runtime/vnode-record.js';
import { FAULT_KINDS } from '../faults/index.js';
import type { ClusterNeeds, FaultContext, InjectedFault } from '../faults/types.js';
import { startScenarioCluster, type ScenarioCluster } from './cluster.js';
import type { Scenario } from './define.js';
import { lossSvg, type ScenarioReport } from './report.js';

export interface RunOptions {
  /** Overrides the scenario's seed. */
  seed?: number;
  /** Where `<scenario>-<time>/report.json` and `loss.svg` go. @default 'reports' */
  reportsDir?: string;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** No live PNode for this long (after a fault) = training cannot go on: stop and say so. */
const NO_PNODE_LIMIT_MS = 10_000;

export async function runScenario(scenario: Scenario, o: RunOptions = {}): Promise<ScenarioReport> {
  const { spec } = scenario;
  const seed = o.seed ?? spec.seed;
  const log = o.log ?? (() => {});
  const started = Date.now();
  const kinds = spec.faults.map((f) => {
    const k = FAULT_KINDS[f.kind];
    if (!k) throw new Error(`scenario ${spec.name}: unknown fault kind ${JSON.stringify(f.kind)} (known: ${Object.keys(FAULT_KINDS).join(', ')})`);
    return k;
  });
  const needs: ClusterNeeds = Object.assign({}, ...kinds.map((k) => k.needs ?? {}));
  const model = resolveModel(loadModelSpec(spec.model));
  const dir = mkdtempSync(join(tmpdir(), `dcnr-scenario-${spec.name}-`));

  log(`starting a private cluster: ${spec.pnodes} PNodes${needs.natsCluster ? ', 3-node NATS cluster (R3)' : ''}${needs.proxy ? ', PNodes behind TCP proxies' : ''}`);
  let cluster: ScenarioCluster | undefined;
  let nc: NatsConnection | undefined;
  let keepLogs: string | undefined;
  try {
    cluster = await startScenarioCluster({ pnodes: spec.pnodes, dir, detectMs: spec.detectMs, needs });
    nc = await connect({ servers: cluster.url.split(','), name: `dcnr-scenario-${spec.name}`, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    await waitForPNodes(nc, spec.pnodes, 120_000);
    const kernels = await createKernels();
    const run = (extra: Partial<Parameters<typeof train>[0]>) =>
      train({ nc: nc!, model, steps: spec.steps, batch: spec.batch, seed, kernels, ...extra });

    log(`baseline: ${spec.steps} steps × batch ${spec.batch}, seed ${seed}, no faults …`);
    const baseline = await run({});
    log(`baseline: paramsHash ${baseline.paramsHash.slice(0, 16)}…, loss ${baseline.finalLoss.toFixed(4)}`);

    // From here on, what happens is the faulted run's.
    const events: ClusterEvent[] = [];
    const sub = subscribeClusterEvents(nc, (e) => void events.push(e));
    cluster.exits.length = 0;
    const injected: InjectedFault[] = [];
    const faultErrors: string[] = [];
    const ctx: FaultContext = {
      cluster,
      nc,
      deployment: model.spec.name,
      model,
      rng: createRng(`scenario:${spec.name}:${seed}`),
      detectMs: spec.detectMs,
      log: (line) => log(line),
      pickPNodes: (target) => pickPNodes(nc!, target, createRng(`pick:${spec.name}:${seed}:${injected.length}`)),
    };

    const abort = new AbortController();
    let lastProgress = Date.now();
    let noPNodeSince: number | undefined;
    const faultBudgetMs = spec.faults.reduce((s, f) => s + (f.durationMs ?? 5000) * 2, 0);
    const watchdog = setInterval(() => {
      void (async () => {
        const view = await readView(nc!).catch(() => null);
        if (view && Date.now() - view.at < 5000) {
          const alive = view.pnodes.filter((p) => p.alive).length;
          if (alive > 0) noPNodeSince = undefined;
          else noPNodeSince ??= Date.now();
        }
        if (noPNodeSince !== undefined && Date.now() - noPNodeSince > NO_PNODE_LIMIT_MS) {
          abort.abort(new Error(`no PNode alive for ${NO_PNODE_LIMIT_MS / 1000} s after the faults: training cannot go on`));
        } else if (Date.now() - lastProgress > 120_000 + faultBudgetMs) {
          abort.abort(new Error(`training made no progress for ${Math.round((Date.now() - lastProgress) / 1000)} s`));
        }
      })();
    }, 500);

    const pending = [...spec.faults].sort((a, b) => a.atStep - b.atStep);
    let chain: Promise<void> = Promise.resolve();
    let result: TrainResult | undefined;
    let trainError: string | undefined;
    log(`faulted run: ${pending.map((f) => `${f.kind}@${f.atStep}`).join(', ')} …`);
    try {
      result = await run({
        signal: abort.signal,
        onProgress: ({ done }) => {
          lastProgress = Date.now();
          while (pending.length && done >= pending[0].atStep) {
            const f = pending.shift()!;
            chain = chain.then(async () => {
              log(`step ${done}: injecting ${f.kind}${f.target ? ` on ${f.target}` : ''}`);
              try {
                const r = await FAULT_KINDS[f.kind].inject(ctx, f);
                injected.push(r);
                log(`  ${r.detail}`);
              } catch (err) {
                faultErrors.push(`${f.kind}@${f.atStep}: ${(err as Error).message}`);
                log(`  ${f.kind} failed: ${(err as Error).message}`);
              }
            });
          }
        },
      });
    } catch (err) {
      trainError = (err as Error).message;
      log(`faulted run stopped: ${trainError}`);
    } finally {
      clearInterval(watchdog);
    }
    await chain;

    // Recoveries finish after the last loss sometimes: give the supervisor a moment.
    const expectDead = [...new Set(injected.flatMap((f) => f.expectDead))];
    // Recovered: its VNodes run again elsewhere — or it was declared dead hosting none
    // (churn can kill a PNode that a rebalance has just emptied): nothing to move.
    const recoveredOf = () => {
      const done = new Set(events.filter((e) => e.type === 'recovered').map((e) => e.pnode));
      const movedFrom = new Set(events.flatMap((e) => (e.type === 'assigned' && e.from ? [e.from] : [])));
      for (const e of events) if (e.type === 'dead' && !movedFrom.has(e.pnode) && Date.now() - e.at > 2000) done.add(e.pnode);
      return done;
    };
    for (const deadline = Date.now() + 15_000; !trainError && Date.now() < deadline && expectDead.some((p) => !recoveredOf().has(p)); ) await sleep(200);
    sub.unsubscribe();

    const updates = trainError ? null : await countUpdates(nc, model, spec.steps);
    const rejectedMessages = await deadLettered(nc, model.spec.name);
    const view = await readView(nc).catch(() => null);
    const alive = view ? view.pnodes.filter((p) => p.alive).length : 0;
    const recovery = events
      .filter((e): e is Extract<ClusterEvent, { type: 'recovered' }> => e.type === 'recovered')
      .map((e) => ({ pnode: e.pnode, detectMs: e.detectMs, resumeMs: e.resumeMs, vnodes: e.vnodes.length }));
    const crashes = cluster.exits.filter((x) => !x.expected).map(({ name, code, signal }) => ({ name, code, signal }));
    const injectedMessages = injected.reduce((s, f) => s + (f.injectedMessages ?? 0), 0);

    const report: ScenarioReport = {
      scenario: spec.name,
      description: spec.description,
      passed: false,
      reason: '',
      seed,
      steps: spec.steps,
      pnodes: spec.pnodes,
      checks: [],
      faults: injected.map(({ kind, target, atStep, at, healedAt, detail, injectedMessages: n }) => ({ kind, target, atStep, at, healedAt, detail, ...(n ? { injectedMessages: n } : {}) })),
      recovery,
      updates: updates ?? { expected: spec.steps * model.vnodes.length, applied: 0, lost: spec.steps * model.vnodes.length, duplicated: 0 },
      fencedWrites: events.filter((e) => e.type === 'fenced' && e.cause === 'write').length,
      rejectedMessages,
      crashes,
      paramsHash: result?.paramsHash ?? null,
      baselineParamsHash: baseline.paramsHash,
      identical: result?.paramsHash === baseline.paramsHash,
      finalLoss: result?.finalLoss ?? null,
      baselineFinalLoss: baseline.finalLoss,
      losses: result?.losses ?? [],
      durationMs: 0,
    };
    const check = (name: string, passed: boolean, detail: string) => report.checks.push({ name, passed, detail });
    check('training completed', !trainError, trainError ?? `${spec.steps} steps`);
    check('every fault injected', faultErrors.length === 0 && injected.length === spec.faults.length, faultErrors.join('; ') || `${injected.length} of ${spec.faults.length}`);
    check('identical to fault-free run', report.identical, report.identical ? `paramsHash ${baseline.paramsHash.slice(0, 16)}…` : `${report.paramsHash?.slice(0, 16) ?? 'none'}… ≠ ${baseline.paramsHash.slice(0, 16)}…`);
    check('no update lost', report.updates.lost === 0, `${report.updates.applied} of ${report.updates.expected} applied`);
    check('no update applied twice', report.updates.duplicated === 0, `${report.updates.duplicated} extra`);
    const unrecovered = expectDead.filter((p) => !recoveredOf().has(p));
    check('every dead PNode recovered', unrecovered.length === 0, unrecovered.length ? `no recovery of ${unrecovered.join(', ')}` : expectDead.length ? `${expectDead.join(', ')}: VNodes moved and resumed` : 'none died');
    check('no process crashed', crashes.length === 0, crashes.map((c) => `${c.name} exited ${c.signal ?? c.code}`).join(', ') || 'every exit was a fault\'s');
    if (injectedMessages > 0) {
      check('every bad message rejected', rejectedMessages === injectedMessages, `${rejectedMessages} of ${injectedMessages} rejected and dead-lettered`);
    } else {
      check('no message rejected', rejectedMessages === 0, `${rejectedMessages} rejected`);
    }
    check('a PNode alive at the end', alive > 0, `${alive} alive`);
    for (const c of scenario.checks) report.checks.push(c(report));
    report.passed = report.checks.every((c) => c.passed);
    report.reason = report.checks.find((c) => !c.passed)?.detail ?? '';
    if (!report.passed) report.reason = `${report.checks.find((c) => !c.passed)!.name}: ${report.reason}`;
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

/** Live PNodes matching a target: `busiest` (default), `random`, `all`, or an id. */
async function pickPNodes(nc: NatsConnection, target: string | undefined, rng: ReturnType<typeof createRng>): Promise<string[]> {
  const view = await readView(nc);
  const live = (view?.pnodes ?? []).filter((p) => p.alive);
  if (live.length === 0) throw new Error('no live PNode to inject a fault into');
  const t = target ?? 'busiest';
  if (t === 'all') return live.map((p) => p.id);
  if (t === 'busiest') return [[...live].sort((a, b) => b.vnodes.length - a.vnodes.length || a.id.localeCompare(b.id))[0].id];
  if (t === 'random') return [live[rng.int(live.length)].id];
  if (!live.some((p) => p.id === t)) throw new Error(`target ${t} is not a live PNode (live: ${live.map((p) => p.id).join(', ')})`);
  return [t];
}

/** Updates every VNode applied (its persisted counter) vs one per step per VNode. */
async function countUpdates(nc: NatsConnection, model: ResolvedModel, steps: number): Promise<ScenarioReport['updates']> {
  const store = new StateStore((await openBuckets(nc)).state, { chunkBytes: chunkBytesFor(nc) });
  let applied = 0;
  let lost = 0;
  let duplicated = 0;
  for (const v of model.vnodes) {
    const c = await store.read(model.spec.name, v.index);
    // An unreadable record counts as nothing applied: its updates show as lost.
    const progress = c ? readProgress(c.meta) : null;
    const n = progress?.ok ? progress.value.applied : 0;
    applied += n;
    lost += Math.max(0, steps - n);
    duplicated += Math.max(0, n - steps);
  }
  return { expected: steps * model.vnodes.length, applied, lost, duplicated };
}

/** Messages of this deployment kept in the dead-letter stream. */
async function deadLettered(nc: NatsConnection, deployment: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(Stream.deadLetter, { subjects_filter: Subject.deadLetter(deployment) }).catch(() => null);
  return info?.state.subjects?.[Subject.deadLetter(deployment)] ?? 0;
}
