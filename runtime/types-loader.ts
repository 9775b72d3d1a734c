/**
 * VNode types from outside the repository: `--types FILE[,FILE…]` (env `DCNR_TYPES`).
 * Each file is a JS or TS module that exports VNode types (made with `defineVNodeType`)
 * or calls `registerVNodeType` itself; every exported type is registered. The file may
 * import the public API as `dcnr` from wherever it lies (a resolve hook maps it to this
 * package's entry). Launchers pass the absolute paths to their child processes in
 * `DCNR_TYPES`, so a cluster's PNodes load the same files.
 */
import { existsSync } from 'node:fs';
import { register } from 'node:module';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { listVNodeTypes, registerVNodeType } from './registry.js';
import type { VNodeType } from './vnode-type.js';

export const TYPES_ENV = 'DCNR_TYPES';

/** `a.ts,b.ts` → absolute paths (relative to the working directory). */
export function typeFiles(list: string | undefined): string[] {
  return (list ?? '')
    .split(',')
    .map((f) => f.trim())
    .filter(Boolean)
    .map((f) => (isAbsolute(f) ? f : resolve(f)));
}

let hooked = false;

const looksLikeType = (v: unknown): v is VNodeType =>
  !!v && typeof v === 'object' && typeof (v as VNodeType).type === 'string' && typeof (v as VNodeType).version === 'number' && typeof (v as VNodeType).role === 'string';

/**
 * Import each file and register the types it exports. Returns the type ids it added.
 * @throws Error naming the file: missing, failing to import, or defining no type.
 */
export async function loadVNodeTypes(files: string[]): Promise<string[]> {
  if (files.length === 0) return [];
  if (!hooked) {
    const data = { entry: new URL('../index.ts', import.meta.url).href, files: files.map((f) => pathToFileURL(f).href) };
    register(new URL('./resolve-dcnr.mjs', import.meta.url), { data });
    hooked = true;
  }
  const added: string[] = [];
  for (const file of files) {
    if (!existsSync(file)) throw new Error(`--types: ${file} does not exist`);
    const before = new Set(listVNodeTypes().map((t) => t.type));
    let mod: Record<string, unknown>;
    try {
      mod = await import(pathToFileURL(file).href);
    } catch (err) {
      throw new Error(`--types: ${file} could not be loaded: ${(err as Error).message}`);
    }
    for (const value of Object.values(mod)) {
      if (!looksLikeType(value)) continue;
      try {
        registerVNodeType(value);
      } catch (err) {
        throw new Error(`--types: ${file}: ${(err as Error).message}`);
      }
    }
    const fresh = listVNodeTypes().map((t) => t.type).filter((t) => !before.has(t));
    if (fresh.length === 0) throw new Error(`--types: ${file} defines no new VNode type (export one made with defineVNodeType, or call registerVNodeType)`);
    added.push(...fresh);
  }
  return added;
}
