/**
 * The argument checks of every kernel op, one function per op, shared by every
 * backend (reference, OpenBLAS, gpu.js), so an op refuses the same bad call with
 * the same message whatever backend a PNode runs.
 *
 * Why check at all: a short array would read `undefined` and silently turn into
 * NaN (in JS) or read past its end (in native code or on a device). Lengths are
 * exact: a longer array than the shape says is a caller's shape bug, not something
 * to use a prefix of. Zero rows/cols are allowed (empty result) except for the
 * losses, whose mean over nothing is undefined.
 */
import type { ActivationFn } from './types.js';

function checkArray(op: string, name: string, arr: Float32Array): void {
  if (!(arr instanceof Float32Array)) throw new TypeError(`${op}: ${name} must be a Float32Array`);
}

function checkLength(op: string, name: string, arr: Float32Array, need: number, shape: string): void {
  checkArray(op, name, arr);
  if (arr.length !== need) throw new RangeError(`${op}: ${name} has ${arr.length} elements, needs ${need} for ${shape}`);
}

/** Every dimension a non-negative safe integer (a float or NaN would make lengths meaningless). */
function checkDims(op: string, dims: Record<string, number>): void {
  for (const [name, v] of Object.entries(dims)) {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${op}: ${name} must be a non-negative integer, got ${v}`);
  }
}

/** For elementwise pairs, whose shape is only "the same as the other one". */
function checkSameLength(op: string, aName: string, a: Float32Array, bName: string, b: Float32Array): void {
  checkArray(op, aName, a);
  checkArray(op, bName, b);
  if (a.length !== b.length) throw new RangeError(`${op}: ${aName} has ${a.length} elements but ${bName} has ${b.length}`);
}

/** The type is a string union, but the name may come from the wire (a model spec). */
function checkFn(op: string, fn: string): asserts fn is ActivationFn {
  if (fn !== 'relu' && fn !== 'tanh' && fn !== 'sigmoid') {
    throw new RangeError(`${op}: unknown activation ${JSON.stringify(fn)} (valid: relu, tanh, sigmoid)`);
  }
}

/** matmul: op(a) is m×k, op(b) is k×n (the convention of `Kernels.matmul` in ./types.ts). */
export function checkMatmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): void {
  checkDims('matmul', { m, k, n });
  checkLength('matmul', 'a', a, m * k, `op(a) ${m}x${k}`);
  checkLength('matmul', 'b', b, k * n, `op(b) ${k}x${n}`);
}

export function checkAddBias(x: Float32Array, bias: Float32Array, rows: number, cols: number): void {
  checkDims('addBias', { rows, cols });
  checkLength('addBias', 'x', x, rows * cols, `${rows}x${cols}`);
  checkLength('addBias', 'bias', bias, cols, `${cols} columns`);
}

export function checkSumRows(dy: Float32Array, rows: number, cols: number): void {
  checkDims('sumRows', { rows, cols });
  checkLength('sumRows', 'dy', dy, rows * cols, `${rows}x${cols}`);
}

export function checkActivation(fn: string, x: Float32Array): asserts fn is ActivationFn {
  checkFn('activation', fn);
  checkArray('activation', 'x', x);
}

export function checkActivationGrad(fn: string, x: Float32Array, dy: Float32Array): asserts fn is ActivationFn {
  checkFn('activationGrad', fn);
  checkSameLength('activationGrad', 'x', x, 'dy', dy);
}

export function checkSoftmaxCrossEntropy(logits: Float32Array, target: Float32Array, rows: number, cols: number): void {
  checkDims('softmaxCrossEntropy', { rows, cols });
  if (rows === 0 || cols === 0) throw new RangeError('softmaxCrossEntropy: needs at least one row and one column');
  checkLength('softmaxCrossEntropy', 'logits', logits, rows * cols, `${rows}x${cols}`);
  checkLength('softmaxCrossEntropy', 'target', target, rows * cols, `${rows}x${cols}`);
}

export function checkMse(pred: Float32Array, target: Float32Array): void {
  checkSameLength('mse', 'pred', pred, 'target', target);
  if (pred.length === 0) throw new RangeError('mse: pred and target are empty');
}
