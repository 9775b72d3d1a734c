import { defineScenario } from './runner/define.js';

export default defineScenario({
  name: 'pause-pnode',
  description: 'a PNode is frozen (SIGSTOP) past detection and woken (SIGCONT): its VNodes move, its stale writes are fenced',
  pnodes: 3,
  steps: 200,
  batch: 32,
  quick: true,
  faults: [{ kind: 'pause-pnode', atStep: 60, target: 'busiest', durationMs: 3000 }],
});
