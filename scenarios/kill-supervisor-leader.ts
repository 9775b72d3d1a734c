import { defineScenario } from './runner/define.js';

export default defineScenario({
  name: 'kill-supervisor-leader',
  description: 'two supervisors; the leader and the busiest PNode are SIGKILLed together mid-training, the leader is never restarted: the standby takes the lease and recovers the PNode',
  quick: true,
  pnodes: 3,
  steps: 240,
  batch: 32,
  faults: [{ kind: 'kill-supervisor-leader', atStep: 60 }],
});
