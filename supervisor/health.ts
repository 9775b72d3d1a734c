/**
 * Health and risk: from each PNode's heartbeats, a risk score in [0, 1] that it is about
 * to fail or to hold training up — and the proactive drain that moves its VNodes away
 * before it does (docs/architecture.md "Health, risk and proactive drains").
 *
 * The model. Each signal is mapped onto [0, 1] by a ramp between a level where it means
 * nothing (`calm`) and one where it alone says the PNode is failing (`failing`):
 *
 *   signal          measured by          calm → failing
 *   loopLag         the PNode (p99)       150 → 450 ms   (its mailboxes and heartbeats wait)
 *   gc              the PNode             0.2 → 0.6      share of time in GC pauses
 *   heap            the PNode             0.8 → 0.97     V8 heap in use / limit
 *   memory          the PNode             0.92 → 0.98    machine memory in use / total
 *   kernelDrift     the PNode             2 → 6          kernel probe time / its own baseline
 *   heartbeatGap    the supervisor        0.3 → 0.7      (largest gap between beats − period) / detection timeout, last 2 s
 *   restarts        the supervisor        1 → 5          actor restarts + escalations in the last minute
 *
 * and the ramps, each times its weight, are combined as independent evidence (noisy-OR):
 * risk = 1 − Π(1 − wᵢ·rᵢ), so one signal at `failing`, or several part-way there, make a
 * high risk. Every weight is 1 but loop lag's, ½: alone it says a PNode is busy, not that
 * it is failing — measured, a healthy PNode activating a 16M-parameter layer (the memory
 * bench) holds its loop 0.4–1.6 s (p99), and at weight 1 the supervisor drained every
 * such PNode in turn until one held the whole model. With any other signal part-way up
 * (a machine getting slower shows kernel drift too) it still tips the risk past 0.6. The raw risk
 * is smoothed per heartbeat (EWMA, α = 0.3: a time constant of about a second at 250 ms
 * beats), so a lone GC pause or one late beat drains nothing. Every level is from
 * measurement on this machine: a loaded 2-core machine training mnist-mlp with 3 PNodes
 * showed loop p99 ≤ 146 ms (descheduling: 2 cores, 5 processes), GC share ≤ 0.13, heap
 * share ≤ 0.02 and kernel drift ≤ 1.5 (the probe is the best of three runs, which
 * filters descheduling) — risk 0 throughout.
 */
import type { Heartbeat } from '../runtime/protocol.js';

export interface Signal {
  name: string;
  calm: number;
  failing: number;
  /** The most it says alone (its ramp's factor). @default 1 */
  weight?: number;
}

export const SIGNALS: readonly Signal[] = [
  { name: 'loopLag', calm: 150, failing: 450, weight: 0.5 },
  { name: 'gc', calm: 0.2, failing: 0.6 },
  { name: 'heap', calm: 0.8, failing: 0.97 },
  { name: 'memory', calm: 0.92, failing: 0.98 },
  { name: 'kernelDrift', calm: 2, failing: 6 },
  { name: 'heartbeatGap', calm: 0.3, failing: 0.7 },
  { name: 'restarts', calm: 1, failing: 5 },
];

const SMOOTHING = 0.3;
const GAP_WINDOW_MS = 2000;
const RESTART_WINDOW_MS = 60_000;

const ramp = (x: number, s: Signal) => Math.min(1, Math.max(0, (x - s.calm) / (s.failing - s.calm)));
const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** Each signal's weighted ramp and their noisy-OR: the raw risk of one set of measurements. */
export function riskOf(measured: Readonly<Record<string, number>>): { risk: number; signals: Record<string, number> } {
  const signals: Record<string, number> = {};
  let healthy = 1;
  for (const s of SIGNALS) {
    const x = measured[s.name];
    if (x === undefined || !Number.isFinite(x)) continue;
    const r = ramp(x, s) * (s.weight ?? 1);
    signals[s.name] = round3(r);
    healthy *= 1 - r;
  }
  return { risk: round3(1 - healthy), signals };
}

interface Track {
  pid: number;
  risk: number;
  signals: Record<string, number>;
  beats: number[];
  restarts: Array<{ at: number; total: number }>;
}

export interface RiskTracker {
  /** A heartbeat from `hb.pnode` arrived at `now` (supervisor clock). */
  heartbeat(hb: Heartbeat, now: number): void;
  /** The smoothed risk and the last signals' ramps, if the PNode was heard. */
  of(pnode: string): { risk: number; signals: Record<string, number> } | undefined;
  forget(pnode: string): void;
}

export function trackRisk(o: { heartbeatMs: number; detectMs: number }): RiskTracker {
  const tracks = new Map<string, Track>();
  return {
    heartbeat(hb, now) {
      let t = tracks.get(hb.pnode);
      if (!t || t.pid !== hb.pid) tracks.set(hb.pnode, (t = { pid: hb.pid, risk: 0, signals: {}, beats: [], restarts: [] }));
      t.beats.push(now);
      while (t.beats.length > 2 && now - t.beats[0] > GAP_WINDOW_MS) t.beats.shift();
      let gap = 0;
      for (let i = 1; i < t.beats.length; i++) gap = Math.max(gap, t.beats[i] - t.beats[i - 1]);
      const total = hb.counters.restarts + hb.counters.escalations;
      t.restarts.push({ at: now, total });
      while (t.restarts.length > 1 && now - t.restarts[0].at > RESTART_WINDOW_MS) t.restarts.shift();
      const h = hb.health;
      const measured: Record<string, number> = {
        heartbeatGap: t.beats.length > 1 ? (gap - o.heartbeatMs) / o.detectMs : 0,
        restarts: total - t.restarts[0].total,
        ...(h ? { loopLag: h.loopLagMs, gc: h.gcShare, heap: h.heapShare, memory: 1 - h.freeMemShare, kernelDrift: h.kernelDrift } : {}),
      };
      const raw = riskOf(measured);
      t.risk = round3(t.risk + SMOOTHING * (raw.risk - t.risk));
      t.signals = raw.signals;
    },
    of(pnode) {
      const t = tracks.get(pnode);
      return t && { risk: t.risk, signals: t.signals };
    },
    forget(pnode) {
      tracks.delete(pnode);
    },
  };
}

export interface DrainPolicyInput {
  /** Live PNodes: id, risk, VNodes owned, draining (for any reason), and whether that drain is for its risk. */
  pnodes: Array<{ id: string; risk: number; owns: number; draining: boolean; riskDrained?: boolean }>;
  /** Risk at or past which a PNode is drained. */
  drainAt: number;
}

/**
 * Which at-risk PNode to drain now, if any: the riskiest one at or past `drainAt` that
 * owns VNodes, one at a time, and only while a calm PNode (risk below half the
 * threshold, not draining) is left to take them — a cluster all of whose PNodes look
 * sick (a loaded machine, not a failing PNode) drains nothing.
 */
export function drainCandidate(i: DrainPolicyInput): string | undefined {
  const calm = i.pnodes.filter((p) => !p.draining && p.risk < i.drainAt / 2);
  if (calm.length === 0) return undefined;
  const atRisk = i.pnodes.filter((p) => !p.draining && p.owns > 0 && p.risk >= i.drainAt).sort((a, b) => b.risk - a.risk || a.id.localeCompare(b.id));
  return atRisk[0]?.id;
}

/**
 * A PNode drained for its risk whose risk has fallen back below a third of the threshold
 * is taken back at once — before the calm period that ends such a drain — when another
 * PNode is at risk and no calm PNode is left to take its VNodes: the calmest such one.
 * Without this, false alarms on a loaded machine drained healthy PNodes one by one until
 * one held the whole model, and when that one really failed nobody could take it over
 * (degrading-pnode on a slower CI machine: it died owning all 6 VNodes).
 */
export function reclaimCandidate(i: DrainPolicyInput): string | undefined {
  const calm = i.pnodes.filter((p) => !p.draining && p.risk < i.drainAt / 2);
  const atRisk = i.pnodes.some((p) => !p.draining && p.owns > 0 && p.risk >= i.drainAt);
  if (calm.length > 0 || !atRisk) return undefined;
  const back = i.pnodes.filter((p) => p.draining && p.riskDrained && p.risk < i.drainAt / 3).sort((a, b) => a.risk - b.risk || a.id.localeCompare(b.id));
  return back[0]?.id;
}
