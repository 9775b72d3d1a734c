#!/usr/bin/env node
// The layout rules of docs/architecture.md, checked: which top-level folder may import
// which, and no cycle between folders. Test files are integration harnesses (a runtime
// test may start a cluster) and are left out. Prints what breaks a rule; exit 1 if any.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = normalize(join(dirname(fileURLToPath(import.meta.url)), '..'));
const ROOMS = ['runtime', 'actors', 'supervisor', 'trainer', 'cluster', 'serve', 'scenarios', 'bench', 'dashboard', 'cli'];
/** Who may import whom (besides itself). */
const ALLOWED = {
  runtime: [],
  actors: ['runtime'],
  supervisor: ['runtime'],
  trainer: ['runtime'],
  cluster: ['runtime'],
  serve: ['runtime', 'actors', 'trainer', 'cluster'],
  scenarios: ['runtime', 'actors', 'trainer', 'cluster', 'serve'],
  bench: ['runtime', 'actors', 'trainer', 'cluster', 'serve'],
  dashboard: ['runtime', 'cluster'],
  cli: ROOMS,
};
const files = (dir) =>
  readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (n === 'node_modules') return [];
    return statSync(p).isDirectory() ? files(p) : /\.(ts|mjs)$/.test(n) && !n.endsWith('.test.ts') ? [p] : [];
  });
const problems = [];
const edges = new Map(ROOMS.map((r) => [r, new Set()]));
for (const room of ROOMS) {
  for (const file of files(join(root, room))) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)) {
      const target = relative(root, normalize(join(dirname(file), m[1]))).split('/')[0];
      if (target === room || !ROOMS.includes(target)) continue;
      edges.get(room).add(target);
      if (!ALLOWED[room].includes(target)) problems.push(`${relative(root, file)} imports ${m[1]} (${room}/ may not import ${target}/)`);
    }
  }
}
// Cycles between folders (depth-first search on the folder graph).
const state = new Map();
const visit = (r, path) => {
  state.set(r, 'open');
  for (const t of edges.get(r)) {
    if (state.get(t) === 'open') problems.push(`folder cycle: ${[...path, r, t].join(' → ')}`);
    else if (!state.has(t)) visit(t, [...path, r]);
  }
  state.set(r, 'done');
};
for (const r of ROOMS) if (!state.has(r)) visit(r, []);
for (const p of problems) console.log(p);
console.log(problems.length ? `layout: ${problems.length} problem(s)` : `layout: ok (${ROOMS.length} folders, no cycle, nothing imports cli/)`);
process.exit(problems.length ? 1 : 0);
