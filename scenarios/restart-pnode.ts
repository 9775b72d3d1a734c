import { defineScenario } from './runner/define.js';

export default defineScenario({
  name: 'restart-pnode',
  description: 'a PNode crashes and comes back under the same name half a second later',
  quick: true,
  pnodes: 3,
  steps: 200,
  batch: 32,
  faults: [{ kind: 'restart-pnode', atStep: 60, target: 'busiest', durationMs: 500 }],
});
