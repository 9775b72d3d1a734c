/**
 * The default strategy: capacity- and memory-weighted least-loaded, keeping adjacent
 * VNodes of a model together where capacity allows (fewer cross-PNode hops, and a
 * PNode's loss takes out one contiguous stretch of the pipeline, not every other VNode).
 *
 * Weight of a PNode = its measured GFLOP/s as a whole multiple of the slowest
 * candidate's (rounded down past .75): a re-measured figure on a shared machine still
 * varies by tens of percent and equal machines must get equal shares, while a 4× faster
 * PNode still gets four times the VNodes.
 *
 * Cost of a VNode = its estimated bytes in memory (parameters, optimizer slots, stash:
 * `VNodeType.stateBytes`) in whole units of the mean VNode's bytes, at least 16 MiB and
 * at least 1 unit: in a model of small VNodes every VNode costs 1 (placement balances
 * counts), while a layer holding three times the mean costs 3, so big layers spread over
 * PNodes instead of piling up on one (`dcnr bench` memory).
 *
 * A PNode's fair share of the total cost is proportional to its weight. A VNode goes to
 * the PNode of its predecessor while that stays within its share; otherwise to the PNode
 * with the lowest load (cost / weight) after taking it, ties broken by id so the choice
 * is reproducible. A federated deployment's groups (its replicas, its aggregators) are
 * kept apart: the first VNode of a group does not follow its predecessor of another one,
 * so R replicas on R PNodes each run on their own and only their rounds cross PNodes.
 *
 * Memory is a limit, not a speed: a PNode takes a VNode only while its bytes stay within
 * its share of all the VNodes' bytes by free memory (capacity × the free share its health
 * reports), or within the largest VNode's bytes where that is more (a VNode bigger than
 * every share fits alone anywhere), give or take one minimum unit (16 MiB: small VNodes
 * beside a big one do not count) — a fast PNode gets more VNodes, not more than its
 * memory's share of the big ones. When no candidate has room, the limit is ignored.
 * (It was share + largest: measured, a PNode whose re-measured GFLOP/s came out 1.8× its
 * peers' got weight 2 and took the 3M-parameter first layer beside a 16M one, 768 MiB
 * against the others' 400–670 in the memory bench.)
 */
import type { PlacementStrategy } from './types.js';

const MIN_UNIT_BYTES = 16 * 2 ** 20;

export function createLeastLoadedPlacement(): PlacementStrategy {
  return {
    name: 'least-loaded',
    place(o) {
      const { toPlace, candidates, current, bytes } = o;
      const out = new Map<string, string>();
      if (candidates.length === 0) return out;
      const known = [...(bytes?.values() ?? [])];
      const unit = Math.max(MIN_UNIT_BYTES, known.length ? known.reduce((a, b) => a + b, 0) / known.length : 0);
      const cost = (vnode: string) => Math.max(1, Math.round((bytes?.get(vnode) ?? 0) / unit));
      const load = new Map(candidates.map((c) => [c.id, 0]));
      for (const [v, p] of current) if (load.has(p) && !toPlace.includes(v)) load.set(p, load.get(p)! + cost(v));
      const speed = (c: (typeof candidates)[number]) => Math.max(1e-3, c.capacity.gflops);
      const slowest = Math.min(...candidates.map(speed));
      const weight = new Map(candidates.map((c) => [c.id, Math.max(1, Math.floor(speed(c) / slowest + 0.25))]));
      const totalWeight = [...weight.values()].reduce((a, b) => a + b, 0);
      const total = [...load.values()].reduce((a, b) => a + b, 0) + toPlace.reduce((a, v) => a + cost(v), 0);
      const share = (p: string) => Math.ceil((total * weight.get(p)!) / totalWeight);
      const after = (p: string, c: number) => (load.get(p)! + c) / weight.get(p)!;
      const b = (v: string) => bytes?.get(v) ?? 0;
      const held = new Map(candidates.map((c) => [c.id, 0]));
      for (const [v, p] of current) if (held.has(p) && !toPlace.includes(v)) held.set(p, held.get(p)! + b(v));
      const free = new Map(candidates.map((c) => [c.id, Math.max(1, c.capacity.memoryMb * (1 - (c.riskSignals?.memory ?? 0)))]));
      const totalFree = [...free.values()].reduce((x, y) => x + y, 0);
      const allBytes = [...held.values()].reduce((x, y) => x + y, 0) + toPlace.reduce((x, v) => x + b(v), 0);
      const largest = Math.max(0, ...toPlace.map(b), ...[...current.keys()].map(b));
      const room = (p: string, v: string) => held.get(p)! + b(v) <= Math.max((allBytes * free.get(p)!) / totalFree, largest) + MIN_UNIT_BYTES;
      for (const vnode of toPlace) {
        const c = cost(vnode);
        const [dep, index] = vnode.split('.');
        const prevKey = `${dep}.${Number(index) - 1}`;
        // A neighbour only within a group: a federated deployment's next replica starts on the least-loaded PNode.
        const sameGroup = o.groups === undefined || o.groups.get(prevKey) === o.groups.get(vnode);
        const prev = sameGroup ? (out.get(prevKey) ?? current.get(prevKey)) : undefined;
        let choice: string;
        if (prev !== undefined && load.has(prev) && load.get(prev)! + c <= share(prev) && room(prev, vnode)) choice = prev;
        else {
          const roomy = [...load.keys()].filter((p) => room(p, vnode));
          choice = (roomy.length ? roomy : [...load.keys()]).sort((x, y) => after(x, c) - after(y, c) || x.localeCompare(y))[0];
        }
        out.set(vnode, choice);
        load.set(choice, load.get(choice)! + c);
        held.set(choice, held.get(choice)! + b(vnode));
      }
      return out;
    },
  };
}
