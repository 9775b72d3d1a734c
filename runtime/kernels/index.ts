/**
 * Picks and creates the kernel backend. VNode types never import a backend
 * directly; they get a `Kernels` from here, so the mode is chosen in one place.
 */
import { createGpuJsKernels } from './gpujs.js';
import { createReferenceKernels } from './reference.js';
import type { Kernels } from './types.js';

export type { Kernels } from './types.js';

/** Every mode string `createKernels` accepts. */
export const KERNEL_MODES = ['auto', 'js', 'gpu.js', 'gpu.js:webasm', 'gpu.js:cpu', 'gpu.js:headlessgl', 'blas'] as const;
export type KernelModeName = (typeof KERNEL_MODES)[number];

/** Requested mode string → the instance it produced, so a process shares compiled kernels and devices. */
const cache = new Map<string, Promise<Kernels>>();
/** The same, for entries that have resolved (lets `dispose` evict synchronously). */
const settled = new Map<string, Kernels>();

function isKernelMode(mode: string): mode is KernelModeName {
  return (KERNEL_MODES as readonly string[]).includes(mode);
}

function reason(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0] ?? msg;
}

async function createBlas(): Promise<Kernels> {
  try {
    // loaded lazily: the native addon may be missing, and only `blas`/`auto` need it
    const { createBlasKernels } = await import('./blas.js');
    return await createBlasKernels();
  } catch (err) {
    throw new Error(`DCNR: OpenBLAS backend unavailable (${reason(err)})`, { cause: err });
  }
}

async function createAuto(): Promise<Kernels> {
  // 1. a real GL context (needs the optional `gl` package and a display, e.g. Xvfb)
  try {
    return await createKernels('gpu.js:headlessgl');
  } catch {
    // expected on most machines: no `gl`, no display; silently try the next one
  }
  // 2. OpenBLAS; 3. gpu.js on WebAssembly, which always works
  try {
    return await createKernels('blas');
  } catch (err) {
    const fallback = await createKernels('gpu.js:webasm');
    process.stderr.write(`DCNR: OpenBLAS backend unavailable (${reason((err as Error).cause ?? err)}); using ${fallback.mode}\n`);
    return fallback;
  }
}

async function create(mode: KernelModeName): Promise<Kernels> {
  switch (mode) {
    case 'auto':
      return createAuto();
    case 'js':
      return createReferenceKernels();
    case 'gpu.js':
      return createGpuJsKernels({ mode: 'gpu' });
    case 'gpu.js:webasm':
      return createGpuJsKernels({ mode: 'webasm' });
    case 'gpu.js:cpu':
      return createGpuJsKernels({ mode: 'cpu' });
    case 'gpu.js:headlessgl':
      return createGpuJsKernels({ mode: 'headlessgl' });
    case 'blas':
      return createBlas();
  }
}

/**
 * Removes every cache entry that resolved to `k`, so a later `createKernels`
 * builds a fresh backend instead of handing out a disposed one.
 */
function evict(k: Kernels): void {
  for (const [key, v] of settled) {
    if (v === k) {
      settled.delete(key);
      cache.delete(key);
    }
  }
}

/**
 * Wraps a backend so that disposing it also drops it from the process cache.
 * A Proxy rather than a copy, so backend-specific extras (e.g. BLAS `threads`)
 * stay visible and methods keep their own `this`.
 */
function cached(k: Kernels): Kernels {
  const wrapped: Kernels = new Proxy(k, {
    get(target, prop) {
      if (prop === 'dispose') {
        return () => {
          evict(wrapped);
          target.dispose();
        };
      }
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return wrapped;
}

/**
 * The kernel backend for `mode` (default: env `DCNR_KERNEL_MODE`, else `auto`).
 * The same mode string returns the same instance within a process.
 *
 * `auto` tries gpu.js on a real GL context, then OpenBLAS, then gpu.js on
 * WebAssembly (printing one line to stderr when OpenBLAS is missing).
 * An explicitly requested backend that cannot load throws.
 */
export async function createKernels(mode?: string): Promise<Kernels> {
  const requested = (mode ?? process.env.DCNR_KERNEL_MODE ?? '').trim() || 'auto';
  if (!isKernelMode(requested)) {
    throw new Error(`unknown kernel mode "${requested}"; valid modes: ${KERNEL_MODES.join(', ')}`);
  }
  const hit = cache.get(requested);
  if (hit) return hit;
  // `auto` returns the instance of the concrete mode it picked (already wrapped)
  const p = requested === 'auto' ? create(requested) : create(requested).then(cached);
  cache.set(requested, p);
  p.then(
    (k) => {
      if (cache.get(requested) === p) settled.set(requested, k);
    },
    () => {
      if (cache.get(requested) === p) cache.delete(requested);
    },
  );
  return p;
}
