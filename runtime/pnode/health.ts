/**
 * A PNode's health signals, measured by the PNode itself over rolling windows and sent
 * in every heartbeat (`Heartbeat.health`); the supervisor turns them into a risk score
 * (supervisor/health.ts). Also the PNode's re-measured capacity: the kernel probe that
 * gives `kernelDrift` gives a GFLOP/s figure too, and the heartbeat carries the median
 * of the recent ones instead of the single start-up sample.
 *
 * - event-loop delay (`monitorEventLoopDelay`): p99 over the window — a PNode whose loop
 *   is held up answers its mailboxes and heartbeats late;
 * - GC pauses (`PerformanceObserver` on `gc`): their share of the window;
 * - memory: V8 heap in use over its limit, and the machine's free memory;
 * - kernel drift: a 128² matmul (capacity.ts) probed every `probeMs` (best of 3: well under
 *   a millisecond at start-up speed), the best of the last 3 probes over the best of the first 5 — against its own baseline, so a
 *   slow machine is not "sick", a machine getting slower is. Bests, not medians: other
 *   processes on the machine only ever make a run slower, so the fastest of 9 recent runs
 *   is the kernel's own speed unless every one of them was descheduled, while a kernel
 *   that got slower is slower in every run (medians read a busy neighbour as drift 5×,
 *   and a start-up baseline taken in a busy moment hid a 10× slowdown).
 * Heartbeat jitter and error/restart rates are measured by the supervisor (it sees the
 * arrivals and the counters).
 */
import { freemem, totalmem } from 'node:os';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import type { Kernels } from '../kernels/types.js';
import type { PNodeHealth } from '../protocol.js';
import { gflopsOf, probeInputs, probeMatmul } from './capacity.js';

export interface HealthSampler {
  /** The last complete window's signals. */
  health(): PNodeHealth;
  /** GFLOP/s: the median of the recent probes (the start-up figure until there are 3). */
  gflops(startUp: number): number;
  stop(): void;
}

export interface HealthOptions {
  /** @default 1000 */
  windowMs?: number;
  /**
   * Every 250 ms: the best of the last 3 then trails a machine getting slower by under a second
   * (at 500 ms the degrading-pnode drain came ~1 s before the kill at best, once a probe
   * timed only the kernel); a probe costs well under a millisecond.
   * @default 250
   */
  probeMs?: number;
}

const BASELINE_PROBES = 5;
const RECENT_PROBES = 3;
const CAPACITY_PROBES = 8;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

export function startHealthSampler(kernels: Kernels, o: HealthOptions = {}): HealthSampler {
  const windowMs = o.windowMs ?? 1000;
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  let gcMs = 0;
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcMs += e.duration;
  });
  gc.observe({ entryTypes: ['gc'] });

  const probes: number[] = []; // ms per probe, oldest first (first BASELINE_PROBES kept as the baseline)
  let baselineMs = NaN;
  const [a, b] = probeInputs();
  let probing = false;
  const probe = async () => {
    if (probing) return;
    probing = true;
    try {
      probes.push(await probeMatmul(kernels, a, b, 3));
      if (probes.length === BASELINE_PROBES) baselineMs = Math.min(...probes);
      if (probes.length > BASELINE_PROBES + CAPACITY_PROBES) probes.splice(BASELINE_PROBES, 1);
    } catch {
      // a kernel that fails is the host's to report (its actors fail): no probe this time
    } finally {
      probing = false;
    }
  };
  void probe();
  const probeTimer = setInterval(() => void probe(), o.probeMs ?? 250);

  const empty: PNodeHealth = { windowMs, loopLagMs: 0, gcShare: 0, heapShare: 0, freeMemShare: 1, kernelDrift: 1 };
  let last = empty;
  let windowStart = performance.now();
  const roll = () => {
    const now = performance.now();
    const span = Math.max(1, now - windowStart);
    const heap = getHeapStatistics();
    const recent = probes.slice(-RECENT_PROBES);
    last = {
      windowMs: round(span, 0),
      loopLagMs: round(loop.percentile(99) / 1e6, 1),
      gcShare: round(Math.min(1, gcMs / span), 3),
      heapShare: round(Math.min(1, heap.used_heap_size / heap.heap_size_limit), 3),
      freeMemShare: round(Math.min(1, freemem() / totalmem()), 3),
      kernelDrift: Number.isFinite(baselineMs) && probes.length > BASELINE_PROBES ? round(Math.min(...recent) / Math.max(baselineMs, 1e-3), 2) : 1,
    };
    loop.reset();
    gcMs = 0;
    windowStart = now;
  };
  const windowTimer = setInterval(roll, windowMs);
  for (const t of [probeTimer, windowTimer]) t.unref();

  return {
    health: () => last,
    gflops(startUp) {
      const recent = probes.slice(-CAPACITY_PROBES);
      if (recent.length < RECENT_PROBES) return startUp;
      return gflopsOf(median(recent));
    },
    stop() {
      clearInterval(probeTimer);
      clearInterval(windowTimer);
      loop.disable();
      gc.disconnect();
    },
  };
}
