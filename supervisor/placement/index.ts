/** Placement strategies by name. Adding one: a file beside this, and one line here. */
import { createLeastLoadedPlacement } from './least-loaded.js';
import { createRoundRobinPlacement } from './round-robin.js';
import type { PlacementStrategy } from './types.js';

export const PLACEMENTS: Record<string, () => PlacementStrategy> = {
  'least-loaded': () => createLeastLoadedPlacement(),
  'round-robin': () => createRoundRobinPlacement(),
};

export function createPlacement(name: string): PlacementStrategy {
  const make = PLACEMENTS[name];
  if (!make) throw new Error(`unknown placement ${JSON.stringify(name)} (known: ${Object.keys(PLACEMENTS).join(', ')})`);
  return make();
}
