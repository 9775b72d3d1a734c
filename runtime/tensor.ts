/**
 * Tensors and their wire encoding: raw little-endian float32 bytes.
 */
import { endianness } from 'node:os';

/** A dense row-major float32 tensor. `data.length` equals the product of `shape`. */
export interface Tensor {
  shape: number[];
  data: Float32Array;
}

// The wire format is little-endian; we write typed-array memory as it is, so refuse
// to run where that memory is big-endian rather than send garbage.
if (endianness() !== 'LE') throw new Error('DCNR needs a little-endian host (float32 wire format is little-endian)');

/** Number of elements a shape holds. */
export const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Make a tensor, checking that data and shape agree. */
export function tensor(shape: number[], data: Float32Array): Tensor {
  if (data.length !== sizeOf(shape)) {
    throw new Error(`tensor: shape [${shape}] needs ${sizeOf(shape)} elements, data has ${data.length}`);
  }
  return { shape, data };
}

/** The tensor's bytes, without copying. */
export const toBytes = (data: Float32Array): Uint8Array => new Uint8Array(data.buffer, data.byteOffset, data.byteLength);

/**
 * Float32 values from wire bytes: a view of the same memory when the bytes start on a
 * 4-byte boundary, else a copy (Float32Array views need the alignment). A NATS payload
 * is a view into the buffer a socket read or a split message was assembled in — at any
 * offset for a small message, at 0 for one that spanned reads (every large tensor) —
 * and nats.js never reuses that buffer, so the view is safe as long as nobody writes to
 * the bytes (tensors are never modified in place here). Measured on wide-mlp (2 MiB
 * activations): the copies were 1.5% of the process's time, plus their GC.
 */
export function fromBytes(bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % 4 !== 0) throw new Error(`fromBytes: ${bytes.byteLength} bytes is not a whole number of float32s`);
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const out = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/**
 * Index of the first non-finite value, or -1. The common case (all finite) is one
 * pass of x·0 sums — 0 for a finite x, NaN for ±Inf or NaN — twice as fast as testing
 * each value; only a tensor that has one is scanned again for where.
 */
export function firstNonFinite(data: Float32Array): number {
  let s = 0;
  const n = data.length;
  let i = 0;
  for (; i + 3 < n; i += 4) s += data[i] * 0 + data[i + 1] * 0 + data[i + 2] * 0 + data[i + 3] * 0;
  for (; i < n; i++) s += data[i] * 0;
  if (s === 0) return -1;
  for (let j = 0; j < n; j++) if (!Number.isFinite(data[j])) return j;
  return -1;
}
