import { defineScenario } from './runner/define.js';

export default defineScenario({
  name: 'malformed-messages',
  description: '10,000 random and mutated envelopes land in the mailboxes mid-training: every one rejected and counted, nothing crashes',
  pnodes: 3,
  steps: 200,
  batch: 32,
  quick: true,
  faults: [{ kind: 'malformed-messages', atStep: 10, count: 10_000 }],
});
