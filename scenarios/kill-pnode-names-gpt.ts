import { defineScenario } from './runner/define.js';

export default defineScenario({
  name: 'kill-pnode-names-gpt',
  description: 'the transformer names-gpt (20 VNodes: attention, layerNorm, residual merges): the busiest PNode is SIGKILLed mid-training; its VNodes move and resume',
  model: 'names-gpt',
  pnodes: 3,
  steps: 120,
  batch: 16,
  quick: true,
  faults: [{ kind: 'kill-pnode', atStep: 40, target: 'busiest' }],
});
