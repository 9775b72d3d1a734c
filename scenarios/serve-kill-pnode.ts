import { defineScenario } from './runner/define.js';

export default defineScenario({
  name: 'serve-kill-pnode',
  description: 'dcnr serve answers a steady load pinned to a served version while training goes on; the busiest PNode is SIGKILLed: no request fails, every answer is the pinned version\'s',
  pnodes: 3,
  steps: 300,
  batch: 32,
  quick: true,
  serve: { concurrency: 8, versionEvery: 20 },
  faults: [{ kind: 'kill-pnode', atStep: 150, target: 'busiest' }],
});
