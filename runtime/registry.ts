/**
 * The VNode type registry: type id → definition. Built-in types register in
 * actors/index.ts; user code calls `registerVNodeType` with its own.
 */
import type { VNodeType } from './vnode-type.js';

const types = new Map<string, VNodeType>();

/** Register a VNode type; registering a different definition under a taken id is an error. */
export function registerVNodeType(def: VNodeType): void {
  const existing = types.get(def.type);
  if (existing && existing !== def) throw new Error(`VNode type ${def.type} is already registered`);
  types.set(def.type, def);
}

/** The definition of a type id, or a clear error listing the known ones. */
export function getVNodeType(type: string): VNodeType {
  const def = types.get(type);
  if (!def) throw new Error(`unknown VNode type ${JSON.stringify(type)} (known: ${[...types.keys()].sort().join(', ')})`);
  return def;
}

export const listVNodeTypes = (): VNodeType[] => [...types.values()];
