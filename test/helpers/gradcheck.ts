/**
 * Numerical gradient checks for VNode types (micrograd's "backward pass went well").
 *
 * The analytical gradients come from the type's backward() on a real kernel backend;
 * the numerical ones from central differences of a plain-JS float64 reference of the
 * same function. Parameter gradients are read back through an SGD step with lr = 1
 * and no momentum: new = old − grad.
 */
import { createKernels } from '../../runtime/kernels/index.js';
import type { Kernels } from '../../runtime/kernels/types.js';
import { createRng } from '../../runtime/rng.js';

/** Kernel modes to check every type on: the reference, gpu.js, and BLAS where it loads. */
export async function availableKernels(): Promise<Kernels[]> {
  const out: Kernels[] = [await createKernels('js'), await createKernels('gpu.js:webasm')];
  try {
    out.push(await createKernels('blas'));
  } catch (err) {
    if (process.env.CI) throw err; // CI installs OpenBLAS: its absence there is a failure
    console.warn(`(blas backend not checked: ${(err as Error).message})`);
  }
  return out;
}

export function randomArray(n: number, seed: string, scale = 1): Float32Array {
  const rng = createRng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rng.next() * 2 - 1) * scale;
  return a;
}

/** Indices to probe: all of them when few, else a seeded sample. */
export function probeIndices(n: number, count: number, seed: string): number[] {
  if (n <= count) return Array.from({ length: n }, (_, i) => i);
  const rng = createRng(seed);
  return Array.from({ length: count }, () => rng.int(n));
}

/**
 * Central-difference derivative of `f` w.r.t. element `i` of `x`, in float64
 * (x is copied into a Float64Array so the step is not lost to float32 rounding).
 */
export function numericalGrad(f: (x: Float64Array) => number, x: Float32Array | Float64Array, i: number, eps = 1e-4): number {
  const xp = Float64Array.from(x);
  xp[i] += eps;
  const up = f(xp);
  xp[i] -= 2 * eps;
  const down = f(xp);
  return (up - down) / (2 * eps);
}

/** |a − b| ≤ atol + rtol·max(|a|, |b|), with a message naming the element. */
export function close(a: number, b: number, rtol: number, atol: number): boolean {
  return Math.abs(a - b) <= atol + rtol * Math.max(Math.abs(a), Math.abs(b));
}
