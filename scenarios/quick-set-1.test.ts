/**
 * Part 1 of the CI quick set (scenarios/runner/quick-set-tests.ts); part 2 is
 * quick-set-2.test.ts, and the two together cover every quick built-in but kill-pnode.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { quickSet, quickSetPart, registerQuickSetTests } from './runner/quick-set-tests.js';

test('the two parts are the quick set but kill-pnode, each scenario once', async () => {
  const both = [...(await quickSetPart(1)), ...(await quickSetPart(2))].sort();
  assert.equal(both, (await quickSet()).filter((n) => n !== 'kill-pnode').sort());
});

await registerQuickSetTests(1);
test.run();
