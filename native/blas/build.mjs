#!/usr/bin/env node
/**
 * Builds the OpenBLAS addon (native/blas/build/Release/dcnr_blas.node) with node-gyp.
 *
 * Run as the package's `install` script: a missing compiler or libopenblas-dev must
 * never fail `npm install`, because the runtime falls back to gpu.js and says so.
 * So by default a failed build prints ONE line and exits 0.
 *
 *   node native/blas/build.mjs            build; on failure, one line + exit 0
 *   node native/blas/build.mjs --strict   build; on failure exit 1 (CI, `npm run build:native`)
 *   DCNR_BLAS_VERBOSE=1 ...               show node-gyp's own output
 *   DCNR_SKIP_NATIVE=1 ...                do nothing (exit 0)
 *
 * The full node-gyp log of the last build is kept in native/blas/build.log.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const strict = process.argv.includes('--strict');
const verbose = process.env.DCNR_BLAS_VERBOSE === '1';
const logFile = join(here, 'build.log');
const fallback = 'kernels will fall back to gpu.js';

function fail(reason) {
  const how = 'install build-essential and libopenblas-dev, then run `npm run build:native`';
  console.error(`dcnr: OpenBLAS addon not built (${reason}); ${fallback}; ${how}.`);
  process.exit(strict ? 1 : 0);
}

/** The first existing node-gyp.js among the usual places; npm bundles one with itself. */
function findNodeGyp() {
  const candidates = [];
  // npm sets this for lifecycle scripts (npm install / npm run): the node-gyp it ships.
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  // A project-local or globally resolvable node-gyp package.
  try {
    candidates.push(createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    /* not installed as a package: try npm's bundled copy below */
  }
  // npm's bundled copy, next to the npm that this node uses or that is on PATH.
  const npmRoots = [
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm'),
    '/usr/lib/node_modules/npm',
    '/usr/local/lib/node_modules/npm',
    '/usr/share/nodejs/npm',
  ];
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const npm = join(dir, 'npm');
    if (dir && existsSync(npm)) {
      try {
        // …/npm/bin/npm-cli.js → …/npm
        npmRoots.push(dirname(dirname(realpathSync(npm))));
      } catch {
        /* broken symlink: skip */
      }
    }
  }
  for (const root of npmRoots) candidates.push(join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push('/usr/share/nodejs/node-gyp/bin/node-gyp.js'); // Debian's node-gyp package
  return candidates.find((p) => existsSync(p));
}

/**
 * Local Node headers, so node-gyp does not try to download them (fails offline).
 * Prefer the headers of the running node's own prefix, then Debian's /usr.
 */
function findNodeDir() {
  const prefixes = [join(dirname(process.execPath), '..'), '/usr'];
  return prefixes.find((p) => existsSync(join(p, 'include', 'node', 'node_api.h')) && existsSync(join(p, 'include', 'node', 'common.gypi')));
}

if (process.env.DCNR_SKIP_NATIVE === '1') {
  console.error(`dcnr: DCNR_SKIP_NATIVE=1, OpenBLAS addon not built; ${fallback}.`);
  process.exit(0);
}

const gyp = findNodeGyp();
if (!gyp) fail('node-gyp not found (it ships with npm)');

const args = [gyp, 'rebuild'];
const nodedir = findNodeDir();
if (nodedir) args.push(`--nodedir=${nodedir}`);

const res = spawnSync(process.execPath, args, {
  cwd: here,
  encoding: 'utf8',
  stdio: verbose ? 'inherit' : 'pipe',
  maxBuffer: 64 * 1024 * 1024,
});
if (!verbose) writeFileSync(logFile, `${res.stdout ?? ''}${res.stderr ?? ''}`);

const addon = join(here, 'build', 'Release', 'dcnr_blas.node');
if (res.error) fail(`could not run node-gyp: ${res.error.message}`);
if (res.status !== 0 || !existsSync(addon)) {
  const log = `${res.stdout ?? ''}\n${res.stderr ?? ''}`;
  // Name the usual culprits instead of pointing at a 200-line log.
  let reason = `node-gyp exited with ${res.status ?? res.signal}`;
  if (/cblas\.h.*No such file/.test(log)) reason = 'cblas.h not found: libopenblas-dev missing';
  else if (/cannot find -lopenblas/.test(log)) reason = 'libopenblas not found: libopenblas-dev missing';
  else if (/node_api\.h.*No such file/.test(log)) reason = 'Node headers not found';
  else if (/not found: (make|cc|gcc)|No such file or directory.*\b(make|cc|gcc)\b|gyp ERR! stack Error: not found: make/.test(log))
    reason = 'no C compiler/make: build-essential missing';
  else if (/gyp ERR! find Python/.test(log)) reason = 'Python not found (node-gyp needs python3)';
  fail(`${reason}; log: ${verbose ? 'above' : logFile}`);
}

// Loading it proves it links against a working libopenblas at runtime too.
try {
  const blas = createRequire(import.meta.url)(addon);
  console.error(`dcnr: OpenBLAS addon built (${blas.config()}).`);
} catch (e) {
  fail(`built but does not load: ${e instanceof Error ? e.message : String(e)}`);
}
