// Module-resolution hooks (node:module register) for VNode-type files given with --types:
// - the bare specifier `dcnr` resolves to this package's entry, so a file anywhere on disk
//   can `import … from 'dcnr'` without an install;
// - such a file is loaded as an ES module even where no package.json says "type": "module"
//   (a lone my-type.ts in a temp dir would otherwise be taken for CommonJS).
// Plain JS: hooks run in the loader thread.
let entry;
let typeFiles = new Set();
export async function initialize(data) {
  entry = data.entry;
  typeFiles = new Set(data.files);
}
export async function resolve(specifier, context, next) {
  // Through the rest of the chain, so the TypeScript loader (tsx) loads the .ts entry.
  if (specifier === 'dcnr') return next(entry, context);
  const r = await next(specifier, context);
  if (typeFiles.has(r.url.split('?')[0]) && /\.(ts|js)$/.test(r.url.split('?')[0])) return { ...r, format: 'module' };
  return r;
}
