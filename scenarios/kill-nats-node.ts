import { defineScenario } from './runner/define.js';

export default defineScenario({
  name: 'kill-nats-node',
  description: 'on a 3-node NATS cluster with R3 buckets, a follower and then the stream leader are SIGKILLed and restarted',
  pnodes: 3,
  steps: 200,
  batch: 32,
  faults: [{ kind: 'kill-nats-node', atStep: 40, durationMs: 3000 }],
});
