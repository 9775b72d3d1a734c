/**
 * The federated benchmark's scaling model (bench/federated.ts) against numbers worked by
 * hand: compute per step, a round's bytes through the aggregator's link plus a round trip.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { predictScaling } from './federated.js';

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-9, `${what}: ${a} ≠ ${b}`);

test('predictScaling: R = 1 is the plain run; R machines split the steps and pay R × a round\'s bytes over the link per round', () => {
  const [one, three, thirty] = predictScaling({
    stepS: 0.02,
    bytesPerRoundPerReplica: 100_000,
    dataParallelBytesPerStepPerReplica: 875_088,
    totalSteps: 1800,
    syncEvery: 50,
    machines: [1, 3, 30],
  });
  close(one.federatedS, 36, 'R=1 federated');
  close(one.dataParallelS, 36, 'R=1 data-parallel');
  close(one.federatedSpeedup, 1, 'R=1 speedup');
  // 600 steps × 0.02 s + 12 rounds × (3 × 100 kB / 12.5 MB/s + 0.05 s)
  close(three.federatedS, 12 + 12 * (0.024 + 0.05), 'R=3 federated');
  close(three.federatedSpeedup, 36 / 12.888, 'R=3 speedup');
  // 600 steps × (0.02 + 3 × 875,088 B / 12.5 MB/s + 0.05)
  close(three.dataParallelS, 600 * (0.02 + (3 * 875_088) / 12.5e6 + 0.05), 'R=3 data-parallel');
  // 60 steps, 1.2 rounds (amortised) × (30 × 100 kB / 12.5 MB/s + 0.05 s)
  close(thirty.federatedS, 1.2 + 1.2 * (0.24 + 0.05), 'R=30 federated');
  assert.is(thirty.machines, 30);
});

test('predictScaling takes another link and latency', () => {
  const [p] = predictScaling({ stepS: 0.01, bytesPerRoundPerReplica: 1e6, dataParallelBytesPerStepPerReplica: 1e6, totalSteps: 100, syncEvery: 10, machines: [2], linkBytesPerSec: 1e6, roundTripS: 0 });
  close(p.federatedS, 50 * 0.01 + 5 * 2, 'federated');
  close(p.dataParallelS, 50 * (0.01 + 2), 'data-parallel');
});

test.run();
