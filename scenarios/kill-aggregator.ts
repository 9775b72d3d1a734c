import { defineScenario } from './runner/define.js';

/**
 * A federated run (3 replicas, a round every 50 steps, top-k updates) loses the PNode of
 * layer 0's aggregator (VNode 18 = R·N + 0) mid-round: the aggregator moves and resumes
 * from its checkpoint — the deltas it had summed included — and the run ends with the
 * fault-free parameters (docs/federated.md).
 */
export default defineScenario({
  name: 'kill-aggregator',
  description: "the PNode hosting a federated layer's aggregator is SIGKILLed mid-round; it moves, resumes, and every round ends as without the fault",
  pnodes: 3,
  steps: 200,
  batch: 32,
  quick: true,
  federation: { replicas: 3, syncEvery: 50, compress: 'topk:0.1' },
  faults: [{ kind: 'kill-pnode', atStep: 70, target: 'vnode:18' }],
});
