import { defineScenario } from './runner/define.js';

export default defineScenario({
  name: 'hostile-client',
  description: 'an outsider mid-training: no credentials, stolen observer credentials, a forged trainer; every attempt refused or rejected, training bit-identical',
  pnodes: 3,
  steps: 200,
  batch: 32,
  quick: true,
  faults: [{ kind: 'hostile-client', atStep: 30, count: 5 }],
});
