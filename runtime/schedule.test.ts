import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createRng } from './rng.js';
import { advance, initialSchedule, nextInput, type Role } from './schedule.js';

/**
 * Feed a VNode's inputs in a random arrival order and record what it applies.
 * Invariant 3: the applied order must not depend on the arrival order.
 */
function appliedOrder(role: Role, depth: number, steps: number, seed: string): string[] {
  const rng = createRng(seed);
  const pending: Array<{ port: string; seq: number; kind: 'fwd' | 'bwd' | 'target' | 'end' }> = [];
  for (let s = 0; s < steps; s++) {
    pending.push({ port: 'fwd', seq: s, kind: 'fwd' });
    pending.push(role === 'loss' ? { port: 'target', seq: s, kind: 'target' } : { port: 'bwd', seq: s, kind: 'bwd' });
  }
  pending.push({ port: 'fwd', seq: steps, kind: 'end' });
  const arrived: typeof pending = [];
  let s = initialSchedule();
  const order: string[] = [];
  while (true) {
    // Something arrives (random order), then the VNode takes whatever its schedule allows.
    if (pending.length) arrived.push(pending.splice(rng.int(pending.length), 1)[0]);
    let progressed = true;
    while (progressed) {
      progressed = false;
      const want = nextInput(role, s, depth);
      if (!want) return order;
      const i = arrived.findIndex((m) => m.port === want.port && m.seq === want.seq);
      if (i >= 0) {
        const [m] = arrived.splice(i, 1);
        s = advance(s, m.kind, m.seq);
        order.push(`${m.kind}${m.seq}`);
        progressed = true;
      }
    }
    if (!pending.length && !arrived.length) return order;
  }
}

for (const role of ['layer', 'loss'] as const) {
  for (const depth of [0, 1, 3]) {
    test(`${role} depth ${depth}: applied order is independent of arrival order`, () => {
      const first = appliedOrder(role, depth, 12, 'a');
      for (const seed of ['b', 'c', 'd', 'e', 'f']) assert.equal(appliedOrder(role, depth, 12, seed), first);
      assert.is(first.filter((x) => x.startsWith(role === 'loss' ? 'target' : 'bwd')).length, 12, 'every update applied');
    });
  }
}

test('layer depth 1 interleaves F0 F1 B0 F2 B1 …', () => {
  assert.equal(appliedOrder('layer', 1, 4, 'x'), ['fwd0', 'fwd1', 'bwd0', 'fwd2', 'bwd1', 'fwd3', 'bwd2', 'end4', 'bwd3']);
});

test.run();
