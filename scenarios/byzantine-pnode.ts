import { defineScenario } from './runner/define.js';

/** Share of ledger segments re-executed in this scenario (the supervisor's default is 5%). */
const P = 0.5;
/** Steps before a complete segment is on the ledger, at most: its checkpoint, every 100 messages (DEFAULT_CHECKPOINT) = 50 steps. */
const CHECKPOINT_LAG = 50;

export default defineScenario({
  name: 'byzantine-pnode',
  description: `the busiest PNode scales every gradient it sends by 1.01 from step 40, signed as right: spot re-execution (${P * 100}% of the segments) must catch and quarantine it, and the run, rolled back, must end as the fault-free one`,
  pnodes: 3,
  quick: true,
  steps: 400,
  batch: 32,
  auditShare: P,
  faults: [{ kind: 'byzantine-pnode', atStep: 40, target: 'busiest', durationMs: 120_000, count: 10 }],
  checks: [
    (report) => {
      const b = report.faults.find((x) => x.kind === 'byzantine-pnode')?.byzantine;
      if (!b) return { name: 'the liar caught in time and quarantined', passed: false, detail: 'the fault was not injected' };
      if (b.ownedVNodes === 0) return { name: 'the liar caught in time and quarantined', passed: false, detail: 'the liar owned no VNode that sends gradients: nothing to catch' };
      // docs/ledger.md: with probability 1 − 10⁻³ within (⌈ln 10⁻³ / ln(1 − q)⌉ + 1) segments, q = 1 − (1 − p)^k, plus the checkpoint
      // that publishes the segment; plus one segment for the audit itself (re-executed twice when it finds a mismatch).
      const q = 1 - (1 - P) ** b.ownedVNodes;
      const bound = (Math.ceil(Math.log(1e-3) / Math.log(1 - q)) + 2) * b.segmentSteps + CHECKPOINT_LAG;
      const expected = Math.round(b.segmentSteps / 2 + b.segmentSteps / q + CHECKPOINT_LAG / 2);
      const passed = b.quarantined && b.stepsToDetect !== null && b.stepsToDetect <= bound;
      return {
        name: 'the liar caught in time and quarantined',
        passed,
        detail: `${b.quarantined ? `caught after ${b.stepsToDetect} steps` : 'never caught'}; expected ≈ ${expected} (k = ${b.ownedVNodes} lying VNodes, p = ${P}, segments of ${b.segmentSteps} steps), 99.9% within ${bound}`,
      };
    },
  ],
});
