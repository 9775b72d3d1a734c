/** Finding scenarios: built-ins are the `*.ts` files directly in scenarios/; anything else is a path. */
import { existsSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Scenario } from './define.js';

const DIR = fileURLToPath(new URL('..', import.meta.url));

/** Names of the built-in scenarios, sorted. */
export function builtinScenarios(): string[] {
  return readdirSync(DIR)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.endsWith('.d.ts'))
    .map((f) => f.slice(0, -3))
    .sort();
}

/** A built-in name or a file path → its validated scenario (clear errors otherwise). */
export async function loadScenario(nameOrFile: string): Promise<Scenario> {
  const builtin = builtinScenarios().includes(nameOrFile) ? resolve(DIR, `${nameOrFile}.ts`) : undefined;
  const file = builtin ?? resolve(nameOrFile);
  if (!existsSync(file)) {
    throw new Error(`${JSON.stringify(nameOrFile)} is neither a built-in scenario (${builtinScenarios().join(', ')}) nor a file`);
  }
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
  } catch (err) {
    throw new Error(`${file}: cannot load: ${(err as Error).message.split('\n')[0]}`);
  }
  const s = mod.default as Scenario | undefined;
  if (!s || typeof s !== 'object' || !('spec' in s) || !Array.isArray((s as Scenario).checks)) {
    throw new Error(`${file}: its default export must be defineScenario({...}) (see scenarios/README.md)`);
  }
  return s;
}
