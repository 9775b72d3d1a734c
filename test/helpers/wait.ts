/** Polling in tests: wait until a condition holds, or fail naming what was awaited. */
import * as assert from 'uvu/assert';

/** Resolve once `pred()` is true (checked every 20 ms); fail the test after `timeoutMs`. */
export async function waitFor(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) assert.unreachable(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
