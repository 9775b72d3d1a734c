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

/** Every {@link ActivationFn}: the type is a string union, but the name may come from the wire (a model spec). */
const ACTIVATION_FNS: readonly string[] = ['relu', 'tanh', 'sigmoid', 'gelu'] satisfies ActivationFn[];

function checkFn(op: string, fn: string): asserts fn is ActivationFn {
  if (!ACTIVATION_FNS.includes(fn)) {
    throw new RangeError(`${op}: unknown activation ${JSON.stringify(fn)} (valid: ${ACTIVATION_FNS.join(', ')})`);
  }
}

/**
 * Ids (float32 integers) each in [0, limit): an id of 2.5, −1 or NaN would index nothing
 * (undefined → NaN in JS) or out of bounds (on a device), so it is refused, naming where.
 */
function checkIds(op: string, ids: Float32Array, limit: number): void {
  checkArray(op, 'ids', ids);
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i];
    if (!(Number.isInteger(v) && v >= 0 && v < limit)) throw new RangeError(`${op}: ids[${i}] is ${v}, must be an integer in [0, ${limit})`);
  }
}

/** matmul: op(a) is m×k, op(b) is k×n (the convention of `Kernels.matmul` in ./types.ts). */
export function checkMatmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): void {
  checkDims('matmul', { m, k, n });
  checkLength('matmul', 'a', a, m * k, `op(a) ${m}x${k}`);
  checkLength('matmul', 'b', b, k * n, `op(b) ${k}x${n}`);
}

/** batchedMatmul: `batch` products with the shapes of {@link checkMatmul}, stored one after another. */
export function checkBatchedMatmul(a: Float32Array, b: Float32Array, batch: number, m: number, k: number, n: number): void {
  checkDims('batchedMatmul', { batch, m, k, n });
  checkLength('batchedMatmul', 'a', a, batch * m * k, `${batch} × op(a) ${m}x${k}`);
  checkLength('batchedMatmul', 'b', b, batch * k * n, `${batch} × op(b) ${k}x${n}`);
}

export function checkSoftmaxRows(x: Float32Array, rows: number, cols: number, opts: { scale?: number; causalT?: number }): void {
  checkDims('softmaxRows', { rows, cols });
  checkLength('softmaxRows', 'x', x, rows * cols, `${rows}x${cols}`);
  checkScale('softmaxRows', opts.scale);
  const T = opts.causalT;
  if (T !== undefined) {
    if (!Number.isSafeInteger(T) || T < 1) throw new RangeError(`softmaxRows: causalT must be a positive integer, got ${T}`);
    if (cols !== T || rows % T !== 0) throw new RangeError(`softmaxRows: causalT ${T} needs cols = ${T} and rows a multiple of ${T}, got ${rows}x${cols}`);
  }
}

export function checkSoftmaxRowsGrad(y: Float32Array, dy: Float32Array, rows: number, cols: number, scale: number | undefined): void {
  checkDims('softmaxRowsGrad', { rows, cols });
  checkLength('softmaxRowsGrad', 'y', y, rows * cols, `${rows}x${cols}`);
  checkLength('softmaxRowsGrad', 'dy', dy, rows * cols, `${rows}x${cols}`);
  checkScale('softmaxRowsGrad', scale);
}

function checkScale(op: string, scale: number | undefined): void {
  if (scale !== undefined && !(Number.isFinite(scale) && scale > 0)) throw new RangeError(`${op}: scale must be a finite number > 0, got ${scale}`);
}

/** A mean over zero columns is undefined, so layerNorm needs cols ≥ 1. */
export function checkLayerNorm(x: Float32Array, gamma: Float32Array, beta: Float32Array, rows: number, cols: number, eps: number): void {
  checkDims('layerNorm', { rows, cols });
  if (cols === 0) throw new RangeError('layerNorm: needs at least one column');
  checkLength('layerNorm', 'x', x, rows * cols, `${rows}x${cols}`);
  checkLength('layerNorm', 'gamma', gamma, cols, `${cols} columns`);
  checkLength('layerNorm', 'beta', beta, cols, `${cols} columns`);
  if (!(Number.isFinite(eps) && eps >= 0)) throw new RangeError(`layerNorm: eps must be a finite number ≥ 0, got ${eps}`);
}

export function checkLayerNormGrad(x: Float32Array, gamma: Float32Array, dy: Float32Array, mean: Float32Array, rstd: Float32Array, rows: number, cols: number): void {
  checkDims('layerNormGrad', { rows, cols });
  if (cols === 0) throw new RangeError('layerNormGrad: needs at least one column');
  checkLength('layerNormGrad', 'x', x, rows * cols, `${rows}x${cols}`);
  checkLength('layerNormGrad', 'dy', dy, rows * cols, `${rows}x${cols}`);
  checkLength('layerNormGrad', 'gamma', gamma, cols, `${cols} columns`);
  checkLength('layerNormGrad', 'mean', mean, rows, `${rows} rows`);
  checkLength('layerNormGrad', 'rstd', rstd, rows, `${rows} rows`);
}

/** gather: `table` whole rows of `cols`, `rows` = ids.length ids, each a row of the table. */
export function checkGather(table: Float32Array, ids: Float32Array, rows: number, cols: number): void {
  checkDims('gather', { rows, cols });
  checkArray('gather', 'table', table);
  if (cols === 0 ? table.length !== 0 : table.length % cols !== 0) throw new RangeError(`gather: table has ${table.length} elements, not a whole number of rows of ${cols}`);
  checkLength('gather', 'ids', ids, rows, `${rows} rows`);
  checkIds('gather', ids, cols === 0 ? Infinity : table.length / cols);
}

export function checkScatterAdd(ids: Float32Array, dy: Float32Array, tableRows: number, cols: number): void {
  checkDims('scatterAdd', { tableRows, cols });
  checkArray('scatterAdd', 'ids', ids);
  checkLength('scatterAdd', 'dy', dy, ids.length * cols, `${ids.length}x${cols}`);
  checkIds('scatterAdd', ids, tableRows);
}

export function checkSoftmaxCrossEntropyIds(logits: Float32Array, ids: Float32Array, rows: number, cols: number): void {
  checkDims('softmaxCrossEntropyIds', { rows, cols });
  if (rows === 0 || cols === 0) throw new RangeError('softmaxCrossEntropyIds: needs at least one row and one column');
  checkLength('softmaxCrossEntropyIds', 'logits', logits, rows * cols, `${rows}x${cols}`);
  checkLength('softmaxCrossEntropyIds', 'ids', ids, rows, `${rows} rows`);
  checkIds('softmaxCrossEntropyIds', ids, cols);
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
