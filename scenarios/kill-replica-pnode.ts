import { defineScenario } from './runner/define.js';

/**
 * A federated run (3 replicas, a round every 50 steps, PowerSGD updates) loses the PNode
 * of replica 1's first layer (VNode 6 = 1·N + 0) just before a round ends: the round
 * waits for the replica's VNodes to move and replay (membership is every replica, never
 * decided by timing), and the run ends with the fault-free parameters.
 */
export default defineScenario({
  name: 'kill-replica-pnode',
  description: "the PNode hosting a federated replica's layers is SIGKILLed as a round ends; the round waits for them, and the run is bit-identical",
  pnodes: 3,
  steps: 200,
  batch: 32,
  quick: true,
  federation: { replicas: 3, syncEvery: 50, compress: 'powersgd:4' },
  faults: [{ kind: 'kill-pnode', atStep: 95, target: 'vnode:6' }],
});
