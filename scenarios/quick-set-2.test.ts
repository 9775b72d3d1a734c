/** Part 2 of the CI quick set (scenarios/runner/quick-set-tests.ts). */
import { test } from 'uvu';
import { registerQuickSetTests } from './runner/quick-set-tests.js';

await registerQuickSetTests(2);
test.run();
