import { defineScenario } from './runner/define.js';

export default defineScenario({
  name: 'restart-nats',
  description: 'the nats-server stops (gracefully) for 2 s and comes back; every process reconnects, and the run (which cannot tell a clean stop from a crash) starts again from its first step and ends identical',
  pnodes: 3,
  steps: 200,
  batch: 32,
  quick: true,
  faults: [{ kind: 'restart-nats', atStep: 60, durationMs: 2000 }],
});
