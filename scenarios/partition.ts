import { defineScenario } from './runner/define.js';

export default defineScenario({
  name: 'partition',
  description: 'a PNode is cut off from NATS for 4 s while it keeps running: declared dead, its VNodes move, its stale writes are fenced',
  quick: true,
  pnodes: 3,
  steps: 200,
  batch: 32,
  faults: [{ kind: 'partition', atStep: 60, target: 'busiest', durationMs: 4000 }],
});
