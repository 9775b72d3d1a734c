import { defineScenario } from './runner/define.js';

export default defineScenario({
  name: 'churn',
  description: 'PNodes join and leave four times (SIGTERM and SIGKILL alternately) while training runs',
  quick: true,
  pnodes: 3,
  steps: 300,
  batch: 32,
  faults: [{ kind: 'churn', atStep: 30, count: 4, durationMs: 1200 }],
});
