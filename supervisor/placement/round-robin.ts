/** Round-robin: VNode i of the batch to candidate (start + i) mod n, candidates sorted by id. */
import type { PlacementStrategy } from './types.js';

export function createRoundRobinPlacement(): PlacementStrategy {
  let next = 0;
  return {
    name: 'round-robin',
    place({ toPlace, candidates }) {
      const out = new Map<string, string>();
      if (candidates.length === 0) return out;
      const ids = candidates.map((c) => c.id).sort();
      for (const vnode of toPlace) out.set(vnode, ids[next++ % ids.length]);
      return out;
    },
  };
}
