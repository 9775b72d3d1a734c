import { defineScenario } from './runner/define.js';

export default defineScenario({
  name: 'rogue-pnode',
  description: 'an admitted PNode publishes into VNodes it does not own, writes state it does not own, re-uses message ids: every attempt refused or rejected, training bit-identical',
  pnodes: 3,
  steps: 200,
  batch: 32,
  quick: true,
  faults: [{ kind: 'rogue-pnode', atStep: 30, count: 5 }],
});
