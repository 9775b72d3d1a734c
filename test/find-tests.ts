/**
 * Which files `npm test` runs: every `*.test.ts` under the checkout, in every folder
 * (so a folder added later, like `cli/` and `dashboard/` once were, is never missed),
 * except dependencies, dot-folders and test fixtures (files that must fail or hang).
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const SKIP = new Set(['node_modules', 'fixtures']);

/**
 * Every `*.test.ts` below `dir`, sorted by path.
 *
 * @example
 * findTests('/work/wt-tests') // [..., '/work/wt-tests/runtime/log.test.ts', ...]
 */
export function findTests(dir: string): string[] {
  let out: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries.sort()) {
    if (SKIP.has(name) || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out = out.concat(findTests(path));
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}
