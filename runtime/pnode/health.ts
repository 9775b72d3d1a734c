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
 * - kernel drift: a 128² matmul (capacity.ts) probed every `probeMs`, the best of the last
 *   3 probes over the fastest probe so far — against its own baseline, so a slow machine
 *   is not "sick", a machine getting slower is. Each probe is the best of 3 runs after a
 *   2 ms warm-up (below), and the recent figure the best of 9 runs: other processes on
 *   the machine only ever make a run slower, so the fastest is the kernel's own speed
 *   unless every run was slowed, while a kernel that got slower is slower in every run
 *   (medians read a busy neighbour as drift 5×, and a start-up baseline taken in a busy
 *   moment hid a 10× slowdown).
 *   The same kernel on the same core runs at two speeds here, ~0.05 ms and ~0.23 ms
 *   (AMD EPYC VM, OpenBLAS, 1 thread): slow after the thread slept or ran sgemm for a
 *   while, fast after a few milliseconds of plain JS — a power state of the virtual CPU,
 *   not the PNode's health. Measured in degrading-pnode (4 runs each): probed cold, idle
 *   or just-loaded healthy PNodes reported drift 5–6 (risk up to 0.999) in 3 runs; with a
 *   2 ms JS spin before each probe (~9 in 10 probes then run fast; 0.8% of a core at
 *   250 ms) none did, but a baseline of the first five probes, all taken in the slow
 *   state, hid the 10× slowdown in 1 run. Hence the fastest probe so far as the baseline:
 *   the fast state is the kernel's speed, and it is seen within seconds. A fresh
 *   process's first two probes (slow in every PNode) are skipped.
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

/** Probes before the baseline ones (a fresh process: its first probes ran slow). */
const SETTLE_PROBES = 2;
/** Probes before drift is reported (the baseline is the fastest of them, and of every probe after). */
const BASELINE_PROBES = 5;
/** How long a probe spins in JS before it times the kernel (see above). */
const WARM_UP_MS = 2;
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

  const probes: number[] = []; // ms of the last CAPACITY_PROBES probes, oldest first
  let fastestMs = Infinity; // the baseline: the fastest probe so far
  let settled = 0;
  let taken = 0;
  const [a, b] = probeInputs();
  let probing = false;
  const probe = async () => {
    if (probing) return;
    probing = true;
    try {
      const warm = performance.now();
      while (performance.now() - warm < WARM_UP_MS);
      const ms = await probeMatmul(kernels, a, b, 3);
      if (settled < SETTLE_PROBES) return void settled++;
      taken++;
      probes.push(ms);
      fastestMs = Math.min(fastestMs, ms);
      if (probes.length > CAPACITY_PROBES) probes.shift();
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
      kernelDrift: taken > BASELINE_PROBES ? round(Math.min(...recent) / Math.max(fastestMs, 1e-3), 2) : 1,
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
