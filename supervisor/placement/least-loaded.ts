/**
 * The default strategy: capacity-weighted least-loaded, keeping adjacent VNodes of a
 * model together where capacity allows (fewer cross-PNode hops, and a PNode's loss
 * takes out one contiguous stretch of the pipeline, not every other VNode).
 *
 * Weight of a PNode = its measured GFLOP/s as a whole multiple of the slowest
 * candidate's (rounded down past .75): a start-up benchmark on a shared machine varies
 * by tens of percent and equal machines must get equal shares, while a 4× faster
 * PNode still gets four times the VNodes. Its fair share of the VNodes
 * is proportional to its weight. A VNode goes to the PNode of its predecessor while
 * that PNode is under its share; otherwise to the PNode with the lowest load
 * (VNodes / weight), ties broken by id so the choice is reproducible.
 */
import type { PlacementStrategy } from './types.js';

export function createLeastLoadedPlacement(): PlacementStrategy {
  return {
    name: 'least-loaded',
    place({ toPlace, candidates, current }) {
      const out = new Map<string, string>();
      if (candidates.length === 0) return out;
      const count = new Map(candidates.map((c) => [c.id, 0]));
      for (const p of current.values()) if (count.has(p)) count.set(p, count.get(p)! + 1);
      const speed = (c: (typeof candidates)[number]) => Math.max(1e-3, c.capacity.gflops);
      const slowest = Math.min(...candidates.map(speed));
      const weight = new Map(candidates.map((c) => [c.id, Math.max(1, Math.floor(speed(c) / slowest + 0.25))]));
      const totalWeight = [...weight.values()].reduce((a, b) => a + b, 0);
      const placed = [...current.entries()].filter(([v, p]) => count.has(p) && !toPlace.includes(v)).length;
      const total = placed + toPlace.length;
      const share = (p: string) => Math.ceil((total * weight.get(p)!) / totalWeight);
      const load = (p: string) => (count.get(p)! + 1) / weight.get(p)!;
      for (const vnode of toPlace) {
        const [dep, index] = vnode.split('.');
        const prevKey = `${dep}.${Number(index) - 1}`;
        const prev = out.get(prevKey) ?? current.get(prevKey);
        let choice: string;
        if (prev !== undefined && count.has(prev) && count.get(prev)! < share(prev)) choice = prev;
        else choice = [...count.keys()].sort((a, b) => load(a) - load(b) || a.localeCompare(b))[0];
        out.set(vnode, choice);
        count.set(choice, count.get(choice)! + 1);
      }
      return out;
    },
  };
}
