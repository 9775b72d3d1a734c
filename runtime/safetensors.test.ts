/**
 * The safetensors codec: a round trip keeps every bit, name, shape and metadata string;
 * the layout is the format's (u64 LE header size, space-padded JSON, raw LE float32);
 * and every malformed file is refused with its own sentence (invariant 7).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeSafetensors, encodeSafetensors, SafetensorsError } from './safetensors.js';

test('round trip: names, shapes, bits and metadata survive; the header is padded to 8 bytes', () => {
  const w = Float32Array.from([1.5, -0, NaN, 3.4e38, -1e-45, 7, 8, 9, 10, 11, 12, 13]);
  const b = Float32Array.from([0.25, -2]);
  const scalar = Float32Array.from([42]);
  const tensors = [
    { name: '0.W', shape: [3, 4], data: w },
    { name: '0.b', shape: [2], data: b },
    { name: 'head.s', shape: [], data: scalar },
    { name: 'empty', shape: [0, 5], data: new Float32Array(0) },
  ];
  const bytes = encodeSafetensors(tensors, { format: 'dcnr-1', spec: '{"a":"ü"}' });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.is(n % 8, 0, 'header size is a multiple of 8');
  assert.is(bytes.byteLength, 8 + n + 4 * (12 + 2 + 1));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  assert.equal(header['0.W'], { dtype: 'F32', shape: [3, 4], data_offsets: [0, 48] });
  assert.equal(header['0.b'].data_offsets, [48, 56]);
  // Raw little-endian float32 right after the header.
  assert.is(new DataView(bytes.buffer).getFloat32(8 + n + 48, true), 0.25);

  const back = decodeSafetensors(bytes);
  assert.equal(back.metadata, { format: 'dcnr-1', spec: '{"a":"ü"}' });
  assert.equal(back.tensors.map((t) => [t.name, t.shape]), [['0.W', [3, 4]], ['0.b', [2]], ['head.s', []], ['empty', [0, 5]]]);
  const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
  assert.equal(bits(back.tensors[0].data), bits(w), 'bit for bit, -0 and NaN included');
  assert.equal(bits(back.tensors[1].data), bits(b));
  assert.equal(Array.from(back.tensors[2].data), [42]);
});

test('decoding does not depend on the buffer being aligned in memory', () => {
  const bytes = encodeSafetensors([{ name: 'x', shape: [3], data: Float32Array.from([1, 2, 3]) }]);
  const shifted = new Uint8Array(bytes.byteLength + 1).subarray(1);
  shifted.set(bytes);
  assert.equal(Array.from(decodeSafetensors(shifted).tensors[0].data), [1, 2, 3]);
});

test('a metadata key named __proto__ is a plain key', () => {
  const bytes = file('{"__metadata__":{"__proto__":"x","a":"b"}}', 0);
  const meta = decodeSafetensors(bytes).metadata;
  assert.equal(Object.entries(meta), [['__proto__', 'x'], ['a', 'b']]);
  assert.is(Object.getPrototypeOf(meta), Object.prototype);
});

test('no metadata: no __metadata__ key, an empty map back', () => {
  const bytes = encodeSafetensors([{ name: 'x', shape: [1], data: new Float32Array(1) }]);
  assert.not.match(new TextDecoder().decode(bytes), /__metadata__/);
  assert.equal(decodeSafetensors(bytes).metadata, {});
});

test('the encoder refuses what it cannot write truthfully', () => {
  assert.throws(() => encodeSafetensors([{ name: 'x', shape: [2, 2], data: new Float32Array(3) }]), /shape \[2,2\] \(4 values\) but 3 values/);
  assert.throws(() => encodeSafetensors([{ name: '__metadata__', shape: [1], data: new Float32Array(1) }]), /reserved/);
  assert.throws(() => encodeSafetensors([{ name: 'x', shape: [1], data: new Float32Array(1) }, { name: 'x', shape: [1], data: new Float32Array(1) }]), /given twice/);
});

/** A file from a header (object or raw text) and a buffer of `bufferBytes` zero bytes. */
function file(header: unknown, bufferBytes: number, opts: { size?: bigint } = {}): Uint8Array {
  const text = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + text.byteLength + bufferBytes);
  new DataView(out.buffer).setBigUint64(0, opts.size ?? BigInt(text.byteLength), true);
  out.set(text, 8);
  return out;
}
const f32 = (shape: number[], begin: number, end: number) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });

const MALFORMED: Array<[string, Uint8Array, RegExp]> = [
  ['shorter than 8 bytes', new Uint8Array(5), /the file is 5 bytes, shorter than the 8-byte header size/],
  ['header size past the end', file({}, 0, { size: 1000n }), /header size says 1000 bytes, but only 2 follow it/],
  ['header size of 2^64 - 1', file({}, 0, { size: 2n ** 64n - 1n }), /header size says 18446744073709551615 bytes, but only 2 follow/],
  ['header size too small', file('{}', 0, { size: 1n }), /too short for a JSON object/],
  ['header not UTF-8', (() => { const f = file('{"x":1}', 0); f[9] = 0xff; return f; })(), /not valid UTF-8/],
  ['header not an object', file('[1,2]', 0), /does not start with "\{"/],
  ['header not JSON', file('{"x": }', 0), /not valid JSON/],
  ['metadata not an object', file({ __metadata__: ['a'] }, 0), /__metadata__ is not an object of strings/],
  ['metadata value not a string', file({ __metadata__: { steps: 60 } }, 0), /__metadata__.steps is a number, but metadata values are strings only/],
  ['entry not an object', file({ x: 3 }, 0), /tensor "x": its entry is not an object/],
  ['unknown field', file({ x: { ...f32([1], 0, 4), stride: [1] } }, 4), /tensor "x": unknown field "stride"/],
  ['dtype missing', file({ x: { shape: [1], data_offsets: [0, 4] } }, 4), /tensor "x": dtype is missing/],
  ['dtype F16', file({ x: { ...f32([2], 0, 4), dtype: 'F16' } }, 4), /tensor "x" has dtype F16; DCNR reads F32 \(float32\) tensors only/],
  ['dtype F64', file({ x: { ...f32([1], 0, 8), dtype: 'F64' } }, 8), /has dtype F64; DCNR reads F32/],
  ['negative dimension', file({ x: f32([-1], 0, 4) }, 4), /shape must be an array of non-negative integers/],
  ['fractional dimension', file({ x: f32([1.5], 0, 4) }, 4), /shape must be an array of non-negative integers/],
  ['shape not an array', file({ x: { ...f32([1], 0, 4), shape: 4 } }, 4), /shape must be an array/],
  ['offsets not a pair', file({ x: { ...f32([1], 0, 4), data_offsets: [0] } }, 4), /data_offsets must be \[begin, end\]/],
  ['offsets reversed', file({ x: f32([0], 4, 0) }, 4), /data_offsets \[4, 0\] end before they begin/],
  ['offsets past the buffer', file({ x: f32([4], 0, 16) }, 8), /reach past the end of the 8-byte buffer: the file is truncated/],
  ['shape and bytes disagree', file({ x: f32([3], 0, 8) }, 8), /shape \[3\] holds 3 float32 values \(12 bytes\), but data_offsets \[0, 8\] span 8 bytes/],
  ['a huge shape', file({ x: f32([1e9, 1e9, 1e9], 0, 8) }, 8), /shape \[1000000000,1000000000,1000000000\] holds/],
  ['overlapping tensors', file({ a: f32([2], 0, 8), b: f32([2], 4, 12) }, 12), /tensor "b": data_offsets \[4, 12\] overlap the tensor before it \(which ends at 8\)/],
  ['a gap', file({ a: f32([1], 0, 4), b: f32([1], 8, 12) }, 12), /tensor "b": data_offsets start at 8, leaving bytes 4..8 of the buffer to no tensor/],
  ['bytes after the last tensor', file({ a: f32([1], 0, 4) }, 12), /the tensors cover 4 bytes of the 12-byte buffer: 8 bytes after them belong to no tensor/],
  ['an empty name', file({ '': f32([1], 0, 4) }, 4), /a tensor has an empty name/],
];

for (const [name, bytes, message] of MALFORMED) {
  test(`refused: ${name}`, () => {
    try {
      decodeSafetensors(bytes);
      assert.unreachable('decoded');
    } catch (err) {
      assert.instance(err, SafetensorsError);
      assert.match((err as Error).message, message);
      assert.not.match((err as Error).message, /\n/, 'one sentence');
    }
  });
}

test.run();
