import { defineScenario } from './runner/define.js';

export default defineScenario({
  name: 'degrading-pnode',
  description: 'the busiest PNode gets slower and slower for 8 s (kernels up to 10×, event loop held up), then is SIGKILLed: the supervisor must drain it before it dies',
  pnodes: 3,
  quick: true,
  steps: 3000,
  batch: 32,
  faults: [{ kind: 'degrading-pnode', atStep: 100, target: 'busiest', durationMs: 8000, count: 10 }],
  checks: [
    (report) => {
      const f = report.faults.find((x) => x.kind === 'degrading-pnode');
      const passed = f?.stillOwned === 0 && f.leadMs !== undefined && f.lostOnMove === 0;
      return {
        name: 'drained before it died, by a handover',
        passed,
        detail: !f ? 'the fault was not injected' : passed
            ? `every VNode ran elsewhere ${f.leadMs} ms before it died, each from the checkpoint it was released with`
            : f.stillOwned
              ? `it still owned ${f.stillOwned} VNodes when it died`
              : `${f.lostOnMove ?? '?'} moved VNodes did not start from the checkpoint they were released with`,
      };
    },
  ],
});
