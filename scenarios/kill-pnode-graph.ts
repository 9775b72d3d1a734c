import { fileURLToPath } from 'node:url';
import { defineScenario } from './runner/define.js';

export default defineScenario({
  name: 'kill-pnode-graph',
  description: 'a residual graph (fan-out + merge.add, examples/residual-mlp.json): the busiest PNode is SIGKILLed mid-training; its VNodes move and resume, merges and summed gradients included',
  model: fileURLToPath(new URL('../examples/residual-mlp.json', import.meta.url)),
  pnodes: 3,
  steps: 200,
  batch: 32,
  quick: true,
  faults: [{ kind: 'kill-pnode', atStep: 60, target: 'busiest' }],
});
