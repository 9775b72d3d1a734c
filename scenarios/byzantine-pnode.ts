import { defineScenario } from './runner/define.js';

export default defineScenario({
  name: 'byzantine-pnode',
  description: 'the busiest PNode scales every gradient it sends by 1.01 from step 40, signed as right: spot re-execution (a quarter of the segments) must catch it, quarantine it, and the run must end as the fault-free one',
  pnodes: 3,
  steps: 400,
  batch: 32,
  auditShare: 0.25,
  faults: [{ kind: 'byzantine-pnode', atStep: 40, target: 'busiest', durationMs: 120_000, count: 10 }],
  checks: [
    (report) => {
      const b = report.faults.find((x) => x.kind === 'byzantine-pnode')?.byzantine;
      const passed = !!b?.quarantined;
      return { name: 'the liar caught and quarantined', passed, detail: b ? (b.quarantined ? `after ${b.stepsToDetect} steps` : 'never caught') : 'the fault was not injected' };
    },
  ],
});
