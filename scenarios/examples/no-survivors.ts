/**
 * A scenario that MUST fail: every PNode is SIGKILLed and none comes back. The
 * runner has to notice that training cannot go on and say so (exit code 1), not hang.
 * Not a built-in (it lives in examples/); the scenario tests run it.
 */
import { defineScenario } from '../runner/define.js';

export default defineScenario({
  name: 'no-survivors',
  description: 'every PNode is SIGKILLed at step 30 and none is started again',
  pnodes: 2,
  steps: 200,
  batch: 32,
  faults: [{ kind: 'kill-pnode', atStep: 30, target: 'all' }],
});
