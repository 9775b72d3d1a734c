/**
 * The safetensors file format (https://github.com/huggingface/safetensors), float32 only:
 *
 *   u64 little-endian N | N bytes of UTF-8 JSON header | the byte buffer
 *
 * The header maps each tensor name to `{dtype, shape, data_offsets: [begin, end]}`
 * (offsets relative to the buffer's start) and may hold `__metadata__`, a map of string
 * to string. The encoder pads the header with spaces to a multiple of 8 bytes (so the
 * buffer starts 8-aligned, as the reference writer does) and lays the tensors out in the
 * order given, back to back.
 *
 * The decoder reads a user's file (invariant 7: nothing read is trusted): every field is
 * checked, and a file that is not a valid float32 safetensors file is refused with one
 * sentence naming what is wrong — never a crash, never a silently partial read.
 */

/** One tensor of a file: row-major float32 values and their shape. */
export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** A decoded file: its tensors in buffer order, and its `__metadata__` (empty when absent). */
export interface Safetensors {
  tensors: NamedTensor[];
  metadata: Record<string, string>;
}

/** The header's reserved key for free-form string metadata. */
export const METADATA_KEY = '__metadata__';
/** The reference reader refuses headers over 100 MB; so do we (a header is names and numbers). */
export const MAX_HEADER_BYTES = 100_000_000;

import { toBytes } from './tensor.js';

const HEADER_FIELDS = ['dtype', 'shape', 'data_offsets'];

/**
 * The bytes of a safetensors file holding `tensors` (float32) and `metadata`.
 *
 * @example
 * const bytes = encodeSafetensors([{ name: '0.W', shape: [784, 128], data: W }], { format: 'dcnr-1' });
 * writeFileSync('model.safetensors', bytes);
 */
export function encodeSafetensors(tensors: readonly NamedTensor[], metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header[METADATA_KEY] = metadata;
  let at = 0;
  for (const t of tensors) {
    if (t.name === METADATA_KEY || t.name in header) throw new Error(`safetensors: tensor name ${JSON.stringify(t.name)} is ${t.name === METADATA_KEY ? 'reserved' : 'given twice'}`);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new Error(`safetensors: tensor ${t.name} has shape [${t.shape}] (${n} values) but ${t.data.length} values`);
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [at, at + 4 * n] };
    at += 4 * n;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerBytes = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + headerBytes + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes), true);
  out.fill(0x20, 8, 8 + headerBytes);
  out.set(json, 8);
  let offset = 8 + headerBytes;
  for (const t of tensors) {
    // Little-endian float32 as in memory: tensor.ts refuses to run on a big-endian host.
    out.set(toBytes(t.data), offset);
    offset += t.data.byteLength;
  }
  return out;
}

/** Why a file is not a valid float32 safetensors file: one sentence. */
export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

/**
 * Read a safetensors file; every tensor must be F32.
 * @throws SafetensorsError naming the first problem found.
 *
 * @example
 * const { tensors, metadata } = decodeSafetensors(readFileSync('model.safetensors'));
 * tensors[0] // { name: '0.W', shape: [784, 128], data: Float32Array(100352) }
 */
export function decodeSafetensors(bytes: Uint8Array): Safetensors {
  const fail = (message: string): never => {
    throw new SafetensorsError(message);
  };
  if (bytes.byteLength < 8) fail(`the file is ${bytes.byteLength} bytes, shorter than the 8-byte header size a safetensors file starts with`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(bytes.byteLength - 8)) fail(`the header size says ${n} bytes, but only ${bytes.byteLength - 8} follow it: not a safetensors file, or a truncated one`);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(`the header size says ${n} bytes, over the ${MAX_HEADER_BYTES}-byte limit of safetensors headers`);
  const headerBytes = Number(n);
  if (headerBytes < 2) fail(`the header size says ${headerBytes} bytes, too short for a JSON object`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerBytes));
  } catch {
    return fail('the header is not valid UTF-8');
  }
  if (!text.startsWith('{')) fail('the header does not start with "{": not a safetensors file');
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    return fail(`the header is not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(header)) return fail('the header is not a JSON object');

  const rawMeta = header[METADATA_KEY] ?? {};
  if (!isObject(rawMeta)) fail(`${METADATA_KEY} is not an object of strings`);
  for (const [k, v] of Object.entries(rawMeta as Record<string, unknown>)) {
    if (typeof v !== 'string') fail(`${METADATA_KEY}.${k} is a ${v === null ? 'null' : typeof v}, but metadata values are strings only`);
  }
  // fromEntries: a key such as "__proto__" stays a plain key.
  const metadata = Object.fromEntries(Object.entries(rawMeta as Record<string, string>));

  const bufferStart = 8 + headerBytes;
  const bufferBytes = bytes.byteLength - bufferStart;
  const entries: Array<{ name: string; shape: number[]; begin: number; end: number }> = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === METADATA_KEY) continue;
    if (name.length === 0) fail('a tensor has an empty name');
    const what = `tensor ${JSON.stringify(name)}`;
    if (!isObject(info)) return fail(`${what}: its entry is not an object of dtype, shape and data_offsets`);
    const extra = Object.keys(info).find((k) => !HEADER_FIELDS.includes(k));
    if (extra !== undefined) fail(`${what}: unknown field ${JSON.stringify(extra)} (an entry has dtype, shape and data_offsets only)`);
    const { dtype, shape, data_offsets: offsets } = info;
    if (typeof dtype !== 'string') fail(`${what}: dtype is missing or not a string`);
    if (dtype !== 'F32') fail(`${what} has dtype ${dtype}; DCNR reads F32 (float32) tensors only: convert it to float32 first`);
    if (!Array.isArray(shape) || !shape.every(isCount)) return fail(`${what}: shape must be an array of non-negative integers`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) return fail(`${what}: data_offsets must be [begin, end], two non-negative integers`);
    const [begin, end] = offsets as [number, number];
    if (begin > end) fail(`${what}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > bufferBytes) fail(`${what}: data_offsets [${begin}, ${end}] reach past the end of the ${bufferBytes}-byte buffer: the file is truncated`);
    // Past the buffer's size the product cannot be right either: stop before it overflows.
    let values = 1;
    for (const d of shape as number[]) {
      values *= d;
      if (values * 4 > bufferBytes) break;
    }
    if (values * 4 !== end - begin) fail(`${what}: shape [${shape}] holds ${values} float32 values (${values * 4} bytes), but data_offsets [${begin}, ${end}] span ${end - begin} bytes`);
    entries.push({ name, shape: shape as number[], begin, end });
  }

  // The tensors must tile the buffer: no overlap, no gap, nothing after the last.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const e of entries) {
    if (e.begin < at) fail(`tensor ${JSON.stringify(e.name)}: data_offsets [${e.begin}, ${e.end}] overlap the tensor before it (which ends at ${at})`);
    if (e.begin > at) fail(`tensor ${JSON.stringify(e.name)}: data_offsets start at ${e.begin}, leaving bytes ${at}..${e.begin} of the buffer to no tensor`);
    at = e.end;
  }
  if (at !== bufferBytes) fail(`the tensors cover ${at} bytes of the ${bufferBytes}-byte buffer: ${bufferBytes - at} bytes after them belong to no tensor`);

  const tensors = entries.map(({ name, shape, begin, end }): NamedTensor => {
    // A copy: the buffer need not be 4-byte aligned in the file, and callers keep the arrays.
    const data = new Float32Array((end - begin) / 4);
    new Uint8Array(data.buffer).set(bytes.subarray(bufferStart + begin, bufferStart + end));
    return { name, shape, data };
  });
  return { tensors, metadata };
}
