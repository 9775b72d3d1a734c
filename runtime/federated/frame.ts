/**
 * A bytes frame on the wire (`delta` and `sync` messages, dtype `bytes`): the encoded
 * update travels as a tensor message whose float32 view holds [length: u32 LE][bytes]
 * padded with zeros to a multiple of 4. Only copies of its bytes are ever made (never
 * element by element through numbers, which could change a NaN's bits).
 */
import type { Tensor } from '../tensor.js';

/** Bytes → a frame tensor. */
export function toFrame(bytes: Uint8Array): Tensor {
  const words = Math.ceil((bytes.byteLength + 4) / 4);
  const buf = new ArrayBuffer(words * 4);
  new DataView(buf).setUint32(0, bytes.byteLength, true);
  new Uint8Array(buf, 4).set(bytes);
  return { shape: [words], data: new Float32Array(buf) };
}

/** A frame tensor → its bytes (a view). Throws a clear sentence on a frame that is not one. */
export function fromFrame(t: Tensor): Uint8Array {
  if (t.shape.length !== 1 || t.shape[0] !== t.data.length || t.data.length < 1) throw new Error(`a bytes frame is a [words] tensor, got [${t.shape}]`);
  const all = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const length = new DataView(all.buffer, all.byteOffset, 4).getUint32(0, true);
  if (length > all.byteLength - 4) throw new Error(`a bytes frame says ${length} bytes but holds ${all.byteLength - 4}`);
  if (all.byteLength - 4 - length >= 4) throw new Error(`a bytes frame of ${length} bytes is padded to ${all.byteLength - 4} (at most 3 bytes of padding)`);
  for (let i = 4 + length; i < all.byteLength; i++) if (all[i] !== 0) throw new Error('a bytes frame has non-zero padding');
  return all.subarray(4, 4 + length);
}
