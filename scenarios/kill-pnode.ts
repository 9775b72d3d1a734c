import { defineScenario } from './runner/define.js';

export default defineScenario({
  name: 'kill-pnode',
  description: 'the busiest PNode is SIGKILLed mid-training; its VNodes move and resume from KV',
  pnodes: 3,
  steps: 200,
  batch: 32,
  quick: true,
  faults: [{ kind: 'kill-pnode', atStep: 60, target: 'busiest' }],
});
