/** What the runner reads off a finished (or stopped) run: updates applied, dead letters, live PNodes. */
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { readView } from '../../cluster/view.js';
import { openBuckets } from '../../runtime/cluster-state.js';
import type { ResolvedModel } from '../../runtime/model.js';
import { consumerName, consumerPrefix } from '../../runtime/mailbox.js';
import { Bucket, Header, Stream, Subject, type ClusterEvent, type Port, type SupervisorView } from '../../runtime/protocol.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Rng } from '../../runtime/rng.js';
import { chunkBytesFor, StateStore } from '../../runtime/state-store.js';
import { readProgress } from '../../runtime/vnode-record.js';
import { stateAuthOf } from '../../runtime/security/verifier.js';
import type { ScenarioReport } from './report.js';

/**
 * Live PNodes matching a target: `busiest` (default), `random`, `all`, or an id. A
 * supervisor that has just been replaced publishes no live PNode until its start-up
 * grace is over: wait for one (up to `waitMs`) rather than fail the fault.
 */
export async function pickPNodes(nc: NatsConnection, target: string | undefined, rng: Rng, waitMs = 10_000): Promise<string[]> {
  const deadline = Date.now() + waitMs;
  let live: SupervisorView['pnodes'] = [];
  for (;;) {
    live = ((await readView(nc))?.pnodes ?? []).filter((p) => p.alive);
    if (live.length > 0 || Date.now() >= deadline) break;
    await sleep(100);
  }
  if (live.length === 0) throw new Error(`no live PNode to inject a fault into (none in the supervisor's view for ${waitMs / 1000} s)`);
  const t = target ?? 'busiest';
  if (t === 'all') return live.map((p) => p.id);
  // `vnode:K`: the PNode that hosts VNode K (e.g. a federated deployment's aggregator).
  const vnode = /^vnode:(\d+)$/.exec(t)?.[1];
  if (vnode !== undefined) {
    const host = live.find((p) => p.vnodes.some((v) => v.endsWith(`.${vnode}`)));
    if (!host) throw new Error(`no live PNode hosts VNode ${vnode} (live: ${live.map((p) => `${p.id} [${p.vnodes.join(' ')}]`).join(', ')})`);
    return [host.id];
  }
  if (t === 'busiest') return [[...live].sort((a, b) => b.vnodes.length - a.vnodes.length || a.id.localeCompare(b.id))[0].id];
  if (t === 'random') return [live[rng.int(live.length)].id];
  if (!live.some((p) => p.id === t)) throw new Error(`target ${t} is not a live PNode (live: ${live.map((p) => p.id).join(', ')})`);
  return [t];
}

/** Updates a run applies: one per step per VNode — and per round per aggregator of a federated run (its outer steps). */
export const expectedUpdates = (model: ResolvedModel, steps: number): number => model.vnodes.reduce((n, v) => n + updatesOf(v, steps), 0);
const updatesOf = (v: ResolvedModel['vnodes'][number], steps: number) => (v.def.role === 'aggregator' ? v.fed!.rounds!.count : steps);

/** Updates every VNode applied (its persisted counter) vs what it must apply (`expectedUpdates`). */
export async function countUpdates(nc: NatsConnection, model: ResolvedModel, steps: number): Promise<ScenarioReport['updates']> {
  const store = new StateStore((await openBuckets(nc)).state, { chunkBytes: chunkBytesFor(nc), auth: await stateAuthOf(nc) });
  let applied = 0;
  let lost = 0;
  let duplicated = 0;
  for (const v of model.vnodes) {
    const c = await store.read(model.spec.name, v.index);
    const progress = c ? readProgress(c.meta) : null;
    const n = progress?.ok ? progress.value.applied : 0;
    const want = updatesOf(v, steps);
    applied += n;
    lost += Math.max(0, want - n);
    duplicated += Math.max(0, n - want);
  }
  return { expected: expectedUpdates(model, steps), applied, lost, duplicated };
}

/** Messages of this deployment kept in the dead-letter stream. */
export async function deadLettered(nc: NatsConnection, deployment: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(Stream.deadLetter, { subjects_filter: Subject.deadLetter(deployment) }).catch(() => null);
  return info?.state.subjects?.[Subject.deadLetter(deployment)] ?? 0;
}

/** Why each of a deployment's dead-lettered messages was rejected (`Header.Error`) and by which generation of its run, at most `max`. */
export async function deadLetters(nc: NatsConnection, deployment: string, max = 1000): Promise<Array<{ reason: string; generation: number | null }>> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(Stream.deadLetter).catch(() => null);
  if (!info || info.state.messages === 0) return [];
  const out: Array<{ reason: string; generation: number | null }> = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && out.length < max; seq++) {
    const m = await jsm.streams.getMessage(Stream.deadLetter, { seq }).catch(() => null);
    if (!m || m.subject !== Subject.deadLetter(deployment)) continue;
    const g = Number(m.header?.get(Header.RejectedIn) || NaN);
    out.push({ reason: m.header?.get(Header.Error) ?? '', generation: Number.isInteger(g) ? g : null });
  }
  return out;
}

/**
 * PNodes recovered: their VNodes run again elsewhere — or they were declared dead hosting
 * none (churn can kill a PNode that a rebalance has just emptied): nothing to move.
 */
export function recoveredPNodes(events: ClusterEvent[]): Set<string> {
  const done = new Set(events.filter((e) => e.type === 'recovered').map((e) => e.pnode));
  const movedFrom = new Set(events.flatMap((e) => (e.type === 'assigned' && e.from ? [e.from] : [])));
  for (const e of events) if (e.type === 'dead' && !movedFrom.has(e.pnode) && Date.now() - e.at > 2000) done.add(e.pnode);
  return done;
}

/**
 * Where a stalled run stands, one line per VNode: its owner, what its last checkpoint
 * applied, and its mailbox consumers (pending, delivered-unacked, the stream seq delivered
 * last, the consumer's cluster leader). The runner logs it when the watchdog stops a run.
 */
export async function diagnoseStall(nc: NatsConnection, model: ResolvedModel): Promise<string[]> {
  const deployment = model.spec.name;
  const { owners, state } = await openBuckets(nc, 5_000);
  const store = new StateStore(state, { chunkBytes: chunkBytesFor(nc), auth: await stateAuthOf(nc) });
  const jsm = await jetstreamManager(nc);
  const consumers: { name: string; line: string }[] = [];
  for await (const c of jsm.consumers.list(Stream.mailbox(deployment))) {
    consumers.push({
      name: c.name,
      line: `${c.name}: pending ${c.num_pending}, unacked ${c.num_ack_pending}, redelivered ${c.num_redelivered}, delivered up to stream seq ${c.delivered.stream_seq}, waiting pulls ${c.num_waiting}, leader ${c.cluster?.leader ?? '-'}`,
    });
  }
  const lines: string[] = [];
  for (const name of [Stream.mailbox(deployment), Stream.metrics(deployment), `KV_${Bucket.State}`, `KV_${Bucket.Owners}`]) {
    const si = await jsm.streams.info(name).catch((e) => e as Error);
    lines.push(
      si instanceof Error
        ? `stream ${name}: ${si.message}`
        : `stream ${name}: R${si.config.num_replicas}, ${si.state.messages} messages (seq ${si.state.first_seq}–${si.state.last_seq}), ${si.state.consumer_count} consumers, leader ${si.cluster?.leader ?? '-'}, replicas ${(si.cluster?.replicas ?? []).map((r) => `${r.name}${r.current ? '' : ' (behind)'}`).join(', ') || '-'}`,
    );
  }
  for (const v of model.vnodes) {
    const key = `${deployment}.${v.index}`;
    const owner = await owners.get(key).catch(() => null);
    const c = await store.read(deployment, v.index).catch(() => null);
    const progress = c ? readProgress(c.meta) : null;
    lines.push(`${key} (${v.def.type}): owner ${owner?.string() ?? 'none'}, checkpoint applied ${progress?.ok ? progress.value.applied : '?'}, epoch ${c?.meta.epoch ?? '?'}`);
    const ports: Port[] = v.def.role === 'loss' ? ['fwd', 'target'] : ['fwd', 'bwd'];
    const listed = consumers.filter((x) => ports.some((port) => x.name.startsWith(consumerPrefix(deployment, v.index, port))));
    for (const x of listed) lines.push(`  ${x.line}`);
    if (listed.length === 0) {
      // Not listed: ask for each port's consumer by name (the list and the lookup are answered differently).
      for (const port of ports) {
        const name = consumerName(deployment, v.index, port, c?.meta.epoch ?? 1);
        const ci = await jsm.consumers.info(Stream.mailbox(deployment), name).catch((e) => e as Error);
        lines.push(`  ${name}: ${ci instanceof Error ? `not found (${ci.message})` : `exists but not listed: pending ${ci.num_pending}, unacked ${ci.num_ack_pending}, leader ${ci.cluster?.leader ?? '-'}`}`);
      }
    }
  }
  return lines;
}
