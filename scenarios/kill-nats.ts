import { defineScenario } from './runner/define.js';

export default defineScenario({
  name: 'kill-nats',
  description: 'the single nats-server is SIGKILLed mid-training and restarted after 2 s on its store; it may have lost what it acknowledged last, so the run starts again from its first step and ends identical',
  pnodes: 3,
  steps: 200,
  batch: 32,
  quick: true,
  faults: [{ kind: 'kill-nats', atStep: 60, durationMs: 2000 }],
});
