import { defineScenario } from './runner/define.js';

export default defineScenario({
  name: 'kill-supervisor',
  description: 'the supervisor is SIGKILLed and replaced mid-training, then a PNode dies under the new one',
  quick: true,
  pnodes: 3,
  steps: 240,
  batch: 32,
  faults: [
    { kind: 'kill-supervisor', atStep: 50, durationMs: 500 },
    { kind: 'kill-pnode', atStep: 140, target: 'busiest' },
  ],
});
