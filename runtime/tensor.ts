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
 * Float32 values from wire bytes. Copies, because a NATS payload is a view into a
 * larger buffer at any byte offset, and Float32Array views need 4-byte alignment.
 */
export function fromBytes(bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % 4 !== 0) throw new Error(`fromBytes: ${bytes.byteLength} bytes is not a whole number of float32s`);
  const out = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/** Index of the first non-finite value, or -1. */
export function firstNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) return i;
  }
  return -1;
}
