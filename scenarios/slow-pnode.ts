import { defineScenario } from './runner/define.js';

export default defineScenario({
  name: 'slow-pnode',
  description: 'one PNode waits 25 ms before every message for 4 s (still heartbeating): slower, never different',
  quick: true,
  pnodes: 3,
  steps: 200,
  batch: 32,
  faults: [{ kind: 'slow-pnode', atStep: 40, target: 'busiest', durationMs: 4000, count: 25 }],
});
