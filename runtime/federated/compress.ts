/**
 * The codecs of federated rounds (issue 17): every H steps a replica sends its
 * pseudo-gradient to its aggregator and the aggregator sends the outer update back,
 * both compressed with error feedback. This file is the math and the wire format only:
 * pure, deterministic functions over Float32Array; no NATS, no kernels.
 *
 * Determinism is the point (the replicated run's paramsHash must not depend on where
 * or when a message was encoded): plain JS loops, sums taken in float64 in a fixed
 * order and rounded to float32 once, explicit little-endian through DataView, and no
 * Math function whose last bits the spec leaves to the engine (log, cos, exp).
 *
 * Wire format (version 1), all little-endian:
 *
 * | bytes | what                                                                 |
 * |-------|----------------------------------------------------------------------|
 * | 3     | magic `DCZ`                                                          |
 * | 1     | format version (1)                                                   |
 * | 1     | kind: 0 none, 1 int8, 2 topk, 3 powersgd                             |
 * | 4     | u32 parameter: int8's block, powersgd's rank, 0 for none and topk    |
 * | 4     | u32 tensor count                                                     |
 *
 * then per tensor, in the order given:
 *
 * | bytes | what                                                                 |
 * |-------|----------------------------------------------------------------------|
 * | 4     | u32 FNV-1a of the name (UTF-8)                                       |
 * | 4     | u32 FNV-1a of the shape written as `784,128`                         |
 * | 1     | mode: 0 raw, 1 int8, 2 topk, 3 powersgd factors                      |
 * | …     | raw: n f32 · int8: ceil(n/block) f32 scales, then n i8 ·             |
 * |       | topk: u32 k, k u32 indices (strictly increasing), k f32 values ·     |
 * |       | powersgd: P [n×r] f32 row-major, then Q [m×r] f32 row-major          |
 *
 * The two hashes are a check that sender and receiver mean the same tensors (13 bytes
 * of header, then 9 a tensor), not a security measure: the envelope's
 * signature covers that.
 */
import { createRng } from '../rng.js';
import { sizeOf } from '../tensor.js';

/** How a round's tensors are compressed. */
export type Compression =
  | { kind: 'none' }
  /** Per block of `block` values one float32 scale and an int8 per value. @default block 256 */
  | { kind: 'int8'; block: number }
  /** Keep the `max(1, ceil(fraction·n))` values of largest |x|; 0 < fraction <= 1. */
  | { kind: 'topk'; fraction: number }
  /** Rank-`rank` factors of each 2-D tensor; 1 <= rank <= 64. */
  | { kind: 'powersgd'; rank: number };

/** One named tensor to encode: its row-major shape (product = data.length) and its error-feedback residual (same length; zeros at the start). */
export interface EncodeInput {
  name: string;
  shape: number[];
  data: Float32Array;
  residual: Float32Array;
}

/** What `encodeTensors` gives. */
export interface Encoded {
  /** What goes on the wire, all tensors in one buffer. */
  bytes: Uint8Array;
  /** Exactly what `decodeTensors(bytes, …)` gives, per tensor: the sender applies these, not its raw input. */
  decoded: Float32Array[];
  /** New residual per tensor: (data + residual) − decoded, in float32. */
  residuals: Float32Array[];
}

/** @default 256 values per int8 scale */
export const DEFAULT_INT8_BLOCK = 256;
/** PowerSGD's largest rank: the factors grow with it and past this the codec stops paying. */
export const MAX_POWERSGD_RANK = 64;

const FORMS = 'none, int8, int8:BLOCK, topk:F or powersgd:R';
const MAGIC = [0x44, 0x43, 0x5a]; // 'DCZ'
const VERSION = 1;
const KINDS = ['none', 'int8', 'topk', 'powersgd'] as const;
const HEADER_BYTES = 13;
const TENSOR_HEADER_BYTES = 9;
const U32_MAX = 0xffffffff;

/** How one tensor is written; a powersgd buffer mixes `factors` and `raw`. */
const Mode = { raw: 0, int8: 1, topk: 2, factors: 3 } as const;
type Mode = (typeof Mode)[keyof typeof Mode];

const isWhole = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x);

/** What is wrong with a Compression built in code, or null. */
function compressionProblem(c: Compression): string | null {
  switch (c?.kind) {
    case 'none':
      return null;
    case 'int8':
      return isWhole(c.block) && c.block >= 1 && c.block <= U32_MAX ? null : `the int8 block ${c.block} is not a whole number from 1 to ${U32_MAX}`;
    case 'topk':
      return typeof c.fraction === 'number' && c.fraction > 0 && c.fraction <= 1 ? null : `the topk fraction ${c.fraction} is not a number with 0 < F <= 1`;
    case 'powersgd':
      return isWhole(c.rank) && c.rank >= 1 && c.rank <= MAX_POWERSGD_RANK ? null : `the powersgd rank ${c.rank} is not a whole number from 1 to ${MAX_POWERSGD_RANK}`;
    default:
      return `the kind ${JSON.stringify((c as { kind?: unknown } | undefined)?.kind)} is not one of ${KINDS.join(', ')}`;
  }
}

/**
 * A Compression from its text. Throws an Error with one sentence naming the bad part
 * and the accepted forms.
 * @example parseCompression('topk:0.01') // { kind: 'topk', fraction: 0.01 }
 */
export function parseCompression(text: string): Compression {
  const colon = text.indexOf(':');
  const kind = colon < 0 ? text : text.slice(0, colon);
  const arg = colon < 0 ? undefined : text.slice(colon + 1);
  const refuse = (why: string): never => {
    throw new Error(`compression ${JSON.stringify(text)}: ${why} (accepted forms: ${FORMS})`);
  };
  const whole = (what: string): number => {
    if (arg === undefined) return refuse(`${kind} needs ${what} after a colon`);
    if (!/^[0-9]{1,10}$/.test(arg)) return refuse(`${what} ${JSON.stringify(arg)} is not a whole number`);
    return Number(arg);
  };
  let c: Compression;
  switch (kind) {
    case 'none':
      if (arg !== undefined) refuse('none takes no argument');
      c = { kind: 'none' };
      break;
    case 'int8':
      c = { kind: 'int8', block: arg === undefined ? DEFAULT_INT8_BLOCK : whole('the block size') };
      break;
    case 'topk': {
      if (arg === undefined) return refuse('topk needs the kept fraction F after a colon');
      if (!/^(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?$/i.test(arg)) refuse(`the fraction ${JSON.stringify(arg)} is not a number`);
      c = { kind: 'topk', fraction: Number(arg) };
      break;
    }
    case 'powersgd':
      c = { kind: 'powersgd', rank: whole('the rank') };
      break;
    default:
      return refuse(`${JSON.stringify(kind)} is not a compression kind`);
  }
  const problem = compressionProblem(c);
  if (problem) refuse(problem);
  return c;
}

/**
 * The canonical text of a Compression; `parseCompression(compressionText(c))` equals `c`.
 * @example compressionText({ kind: 'int8', block: 256 }) // 'int8:256'
 */
export function compressionText(c: Compression): string {
  const problem = compressionProblem(c);
  if (problem) throw new Error(`compressionText: ${problem}`);
  switch (c.kind) {
    case 'none':
      return 'none';
    case 'int8':
      return `int8:${c.block}`;
    case 'topk':
      return `topk:${c.fraction}`; // String(number) round-trips through Number()
    case 'powersgd':
      return `powersgd:${c.rank}`;
  }
}

/** Bytes the uncompressed float32 data of these shapes takes (the baseline for compression ratios). */
export function rawBytes(shapes: number[][]): number {
  return shapes.reduce((sum, shape) => sum + 4 * sizeOf(shape), 0);
}

/** Why a shape cannot be one of ours, or null. */
function shapeProblem(shape: unknown): string | null {
  if (!Array.isArray(shape) || !shape.every((d) => isWhole(d) && d >= 0)) return `[${shape}] is not a list of whole numbers`;
  if (sizeOf(shape) > U32_MAX) return `[${shape}] holds more than ${U32_MAX} values`;
  return null;
}

const utf8 = new TextEncoder();

/** 32-bit FNV-1a of a string's UTF-8 bytes. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (const b of utf8.encode(text)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/** Whether powersgd sends this shape as factors; 1-D tensors (biases) and those too small for the rank go raw. */
const factorable = (shape: readonly number[], rank: number): boolean => shape.length === 2 && rank < Math.min(shape[0], shape[1]);

/** The mode a tensor of this shape is written in under `c`. */
function modeFor(c: Compression, shape: readonly number[]): Mode {
  switch (c.kind) {
    case 'none':
      return Mode.raw;
    case 'int8':
      return Mode.int8;
    case 'topk':
      return Mode.topk;
    case 'powersgd':
      return factorable(shape, c.rank) ? Mode.factors : Mode.raw;
  }
}

/** A run of values written one after another. */
type Section = { f32: Float32Array } | { u32: Uint32Array } | { i8: Int8Array };

const sectionBytes = (s: Section): number => ('f32' in s ? 4 * s.f32.length : 'u32' in s ? 4 * s.u32.length : s.i8.length);

/** int8: per block one scale max|x|/127 (0 for a block that rounds to 0) and round(x/scale) clamped to ±127. */
function int8Sections(v: Float32Array, block: number): Section[] {
  const n = v.length;
  const scales = new Float32Array(Math.ceil(n / block));
  const q = new Int8Array(n);
  for (let b = 0; b < scales.length; b++) {
    const lo = b * block;
    const hi = Math.min(n, lo + block);
    let max = 0;
    for (let i = lo; i < hi; i++) max = Math.max(max, Math.abs(v[i]));
    const scale = Math.fround(max / 127);
    scales[b] = scale;
    // A block of tiny (subnormal) values can round to scale 0: it is sent as zeros and
    // error feedback keeps its mass for a later round.
    if (scale === 0) continue;
    for (let i = lo; i < hi; i++) q[i] = Math.max(-127, Math.min(127, Math.round(v[i] / scale)));
  }
  return [{ f32: scales }, { i8: q }];
}

/** Number of values topk keeps out of n. */
export const topkCount = (fraction: number, n: number): number => Math.min(n, Math.max(1, Math.ceil(fraction * n)));

/**
 * Indices of the k values of largest |x|, ties to the lower index, increasing. One
 * native sort of the magnitudes finds the k-th largest; a pass takes everything above
 * it and as many equal to it as are still needed, in index order.
 */
export function topkIndices(v: Float32Array, k: number): Uint32Array {
  const n = v.length;
  const out = new Uint32Array(k);
  if (k === 0) return out;
  const mags = new Float32Array(n);
  for (let i = 0; i < n; i++) mags[i] = Math.abs(v[i]);
  mags.sort();
  const t = mags[n - k];
  let above = 0;
  for (let i = 0; i < n; i++) if (Math.abs(v[i]) > t) above++;
  let ties = k - above;
  let j = 0;
  for (let i = 0; i < n && j < k; i++) {
    const a = Math.abs(v[i]);
    if (a > t || (a === t && ties-- > 0)) out[j++] = i;
  }
  return out;
}

function topkSections(v: Float32Array, fraction: number): Section[] {
  const idx = topkIndices(v, topkCount(fraction, v.length));
  const values = new Float32Array(idx.length);
  for (let j = 0; j < idx.length; j++) values[j] = v[idx[j]];
  return [{ u32: Uint32Array.of(idx.length) }, { u32: idx }, { f32: values }];
}

/**
 * One PowerSGD step on M [n×m]: P = M·Q0 with a seeded Q0 [m×r], P's columns made
 * orthonormal, Q = Mᵀ·P; M ≈ P·Qᵀ. Q0 is drawn fresh from the seed each call (no warm
 * start kept between rounds: the codec holds no state but the residual); pass a seed
 * that changes per round to vary it.
 */
function powerSgdSections(v: Float32Array, n: number, m: number, r: number, seed: string, name: string): Section[] {
  // Uniform in [-1, 1) rather than rng.normal(): any Q0 of full rank works, and
  // next() is integer arithmetic, bit-identical everywhere (normal() goes through
  // Math.log and Math.cos).
  const rng = createRng(`${seed}/${name}`);
  const q0 = new Float32Array(m * r);
  for (let i = 0; i < q0.length; i++) q0[i] = 2 * rng.next() - 1;

  const p = new Float32Array(n * r);
  const acc = new Float64Array(r);
  for (let i = 0; i < n; i++) {
    acc.fill(0);
    for (let j = 0; j < m; j++) {
      const x = v[i * m + j];
      for (let c = 0; c < r; c++) acc[c] += x * q0[j * r + c];
    }
    for (let c = 0; c < r; c++) p[i * r + c] = acc[c];
  }
  orthonormalizeColumns(p, n, r);

  const q = new Float32Array(m * r);
  const qacc = new Float64Array(m * r);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      const x = v[i * m + j];
      for (let c = 0; c < r; c++) qacc[j * r + c] += x * p[i * r + c];
    }
  }
  q.set(qacc);
  return [{ f32: p }, { f32: q }];
}

/**
 * Modified Gram–Schmidt on the r columns of a row-major [n×r] matrix, in place, each
 * column projected twice ("twice is enough": float32 loses orthogonality in one pass).
 * A column with nothing left after the projections stays zero: zero, or under 1e-4 of
 * its length before them, which is float32 noise of a direction already taken (M of
 * rank < r); normalising that noise would give a column that is not orthogonal to the
 * others and P·Pᵀ·M would no longer be a projection of M.
 */
function orthonormalizeColumns(p: Float32Array, n: number, r: number): void {
  const norm = (c: number) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += p[i * r + c] * p[i * r + c];
    return Math.sqrt(s);
  };
  for (let c = 0; c < r; c++) {
    const before = norm(c);
    for (let pass = 0; pass < 2; pass++) {
      for (let b = 0; b < c; b++) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += p[i * r + b] * p[i * r + c];
        for (let i = 0; i < n; i++) p[i * r + c] = p[i * r + c] - dot * p[i * r + b];
      }
    }
    const after = norm(c);
    const keep = after > 0 && after > 1e-4 * before;
    for (let i = 0; i < n; i++) p[i * r + c] = keep ? p[i * r + c] / after : 0;
  }
}

/**
 * Compress (data + residual) of every tensor into one buffer, with error feedback.
 * `seed` makes PowerSGD's starting Q deterministic: same inputs and seed, same bytes.
 * Never mutates its inputs. Under powersgd, tensors that are not 2-D (biases) or whose
 * smaller side is not above the rank go raw in the same buffer (residual stays zero).
 * @example
 * const { bytes, decoded, residuals } = encodeTensors({ kind: 'topk', fraction: 0.01 }, [{ name: 'W', shape: [784, 128], data, residual }], `${deployment}/${round}`);
 */
export function encodeTensors(c: Compression, tensors: EncodeInput[], seed: string): Encoded {
  const problem = compressionProblem(c);
  if (problem) throw new Error(`encodeTensors: ${problem}`);
  if (tensors.length > U32_MAX) throw new Error(`encodeTensors: ${tensors.length} tensors are more than one buffer holds`);
  const sums = tensors.map(({ name, shape, data, residual }) => {
    const bad = shapeProblem(shape);
    if (bad) throw new Error(`encodeTensors: tensor ${JSON.stringify(name)} has shape ${bad}`);
    const n = sizeOf(shape);
    if (data.length !== n || residual.length !== n) {
      throw new Error(`encodeTensors: tensor ${JSON.stringify(name)} of shape [${shape}] needs ${n} values, has data ${data.length} and residual ${residual.length}`);
    }
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      v[i] = data[i] + residual[i];
      if (!Number.isFinite(v[i])) throw new Error(`encodeTensors: tensor ${JSON.stringify(name)} has a non-finite value at ${i} (data + residual = ${v[i]})`);
    }
    return v;
  });

  const parts = tensors.map(({ name, shape }, t): { mode: Mode; sections: Section[] } => {
    const v = sums[t];
    const mode = modeFor(c, shape);
    switch (mode) {
      case Mode.raw:
        return { mode, sections: [{ f32: v }] };
      case Mode.int8:
        return { mode, sections: int8Sections(v, (c as { block: number }).block) };
      case Mode.topk:
        return { mode, sections: topkSections(v, (c as { fraction: number }).fraction) };
      case Mode.factors:
        return { mode, sections: powerSgdSections(v, shape[0], shape[1], (c as { rank: number }).rank, seed, name) };
    }
  });

  let size = HEADER_BYTES;
  for (const { sections } of parts) size += TENSOR_HEADER_BYTES + sections.reduce((s, x) => s + sectionBytes(x), 0);
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  bytes.set(MAGIC, 0);
  view.setUint8(3, VERSION);
  view.setUint8(4, KINDS.indexOf(c.kind));
  view.setUint32(5, c.kind === 'int8' ? c.block : c.kind === 'powersgd' ? c.rank : 0, true);
  view.setUint32(9, tensors.length, true);
  let at = HEADER_BYTES;
  parts.forEach(({ mode, sections }, t) => {
    view.setUint32(at, fnv1a(tensors[t].name), true);
    view.setUint32(at + 4, fnv1a(String(tensors[t].shape)), true);
    view.setUint8(at + 8, mode);
    at += TENSOR_HEADER_BYTES;
    for (const s of sections) {
      if ('f32' in s) for (const x of s.f32) (view.setFloat32(at, x, true), (at += 4));
      else if ('u32' in s) for (const x of s.u32) (view.setUint32(at, x, true), (at += 4));
      else for (const x of s.i8) (view.setInt8(at, x), (at += 1));
    }
  });

  // The sender's decoded values come from decoding its own bytes: one reconstruction,
  // so what it applies is bit-for-bit what every receiver applies.
  let decoded: Float32Array[];
  try {
    decoded = decodeTensors(bytes, tensors);
  } catch (e) {
    throw new Error(`encodeTensors: the encoding under ${compressionText(c)} does not decode, values this large overflow float32 (${(e as Error).message})`);
  }
  const residuals = sums.map((v, t) => {
    const d = decoded[t];
    const r = new Float32Array(v.length);
    for (let i = 0; i < v.length; i++) r[i] = v[i] - d[i];
    return r;
  });
  return { bytes, decoded, residuals };
}

/** Bounds-checked little-endian reads; every failure is one sentence. */
class Reader {
  private at = 0;
  private readonly view: DataView;
  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get offset(): number {
    return this.at;
  }
  get left(): number {
    return this.bytes.byteLength - this.at;
  }
  private take(count: number, what: string): number {
    if (count > this.left) throw new Error(`decodeTensors: the buffer ends inside ${what} (${count} bytes needed at offset ${this.at}, ${this.left} left)`);
    const at = this.at;
    this.at += count;
    return at;
  }
  u8(what: string): number {
    return this.view.getUint8(this.take(1, what));
  }
  u32(what: string): number {
    return this.view.getUint32(this.take(4, what), true);
  }
  i8s(count: number, what: string): Int8Array {
    const at = this.take(count, what);
    const out = new Int8Array(count);
    for (let i = 0; i < count; i++) out[i] = this.view.getInt8(at + i);
    return out;
  }
  u32s(count: number, what: string): Uint32Array {
    const at = this.take(4 * count, what);
    const out = new Uint32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.view.getUint32(at + 4 * i, true);
    return out;
  }
  f32s(count: number, what: string): Float32Array {
    const at = this.take(4 * count, what);
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) {
      out[i] = this.view.getFloat32(at + 4 * i, true);
      if (!Number.isFinite(out[i])) throw new Error(`decodeTensors: ${what} holds a non-finite value (${out[i]}) at position ${i}`);
    }
    return out;
  }
}

/** The result must be finite too: a product of finite float32s can still overflow. */
function checkFinite(out: Float32Array, what: string): Float32Array {
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i])) throw new Error(`decodeTensors: ${what} decodes to a non-finite value at ${i} (float32 overflow)`);
  }
  return out;
}

/**
 * The kind a buffer's header names, with int8's block and PowerSGD's rank (`none`,
 * `int8:256`, `topk`, `powersgd:4`: top-k's fraction is not on the wire), or null when
 * the buffer has no readable header. A receiver compares it with its deployment's.
 */
export function encodedKind(bytes: Uint8Array): string | null {
  if (bytes.byteLength < HEADER_BYTES || MAGIC.some((b, i) => bytes[i] !== b)) return null;
  const kind = KINDS[bytes[4]];
  if (kind === undefined) return null;
  const param = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(5, true);
  return kind === 'int8' || kind === 'powersgd' ? `${kind}:${param}` : kind;
}

/** `encodedKind`'s text for a compression: what its frames' headers name. */
export const kindOnTheWire = (c: Compression): string => (c.kind === 'int8' ? `int8:${c.block}` : c.kind === 'powersgd' ? `powersgd:${c.rank}` : c.kind);

/**
 * Decode a buffer made by `encodeTensors` for tensors of the given names and shapes.
 * Validates everything (magic and version, kind, counts, names, shapes, lengths, topk
 * indices in range and strictly increasing, finite values, no trailing bytes) and
 * throws an Error with one sentence on any malformed input.
 * @example const [W, b] = decodeTensors(payload, [{ name: 'W', shape: [784, 128] }, { name: 'b', shape: [128] }]);
 */
export function decodeTensors(bytes: Uint8Array, expected: Array<{ name: string; shape: number[] }>): Float32Array[] {
  if (!(bytes instanceof Uint8Array)) throw new Error('decodeTensors: the buffer is not a Uint8Array');
  for (const { name, shape } of expected) {
    const bad = shapeProblem(shape);
    if (bad) throw new Error(`decodeTensors: expected tensor ${JSON.stringify(name)} has shape ${bad}`);
  }
  const r = new Reader(bytes);
  const magic = [r.u8('the magic'), r.u8('the magic'), r.u8('the magic')];
  if (magic.some((b, i) => b !== MAGIC[i])) throw new Error(`decodeTensors: the buffer does not start with the magic 'DCZ' (it starts ${magic.map((b) => b.toString(16).padStart(2, '0')).join(' ')})`);
  const version = r.u8('the header');
  if (version !== VERSION) throw new Error(`decodeTensors: format version ${version} is not the one this runtime reads (${VERSION})`);
  const kindCode = r.u8('the header');
  const kind = KINDS[kindCode];
  if (kind === undefined) throw new Error(`decodeTensors: kind code ${kindCode} is not one of 0..${KINDS.length - 1} (${KINDS.join(', ')})`);
  const param = r.u32('the header');
  let c: Compression;
  if (kind === 'int8') c = { kind, block: param };
  else if (kind === 'powersgd') c = { kind, rank: param };
  else {
    if (param !== 0) throw new Error(`decodeTensors: ${kind} takes no parameter but the header has ${param}`);
    c = kind === 'none' ? { kind } : { kind, fraction: 1 }; // topk's fraction is not on the wire: each tensor carries its k
  }
  const problem = compressionProblem(c);
  if (problem) throw new Error(`decodeTensors: the header's ${problem}`);
  const count = r.u32('the header');
  if (count !== expected.length) throw new Error(`decodeTensors: the buffer holds ${count} tensors, ${expected.length} expected`);

  const out = expected.map(({ name, shape }, t) => {
    const what = `tensor ${t} (${JSON.stringify(name)})`;
    if (r.u32(`the header of ${what}`) !== fnv1a(name)) throw new Error(`decodeTensors: ${what} on the wire has another name (its name hash differs)`);
    if (r.u32(`the header of ${what}`) !== fnv1a(String(shape))) throw new Error(`decodeTensors: ${what} on the wire has another shape than [${shape}] (its shape hash differs)`);
    const mode = r.u8(`the header of ${what}`);
    const want = modeFor(c, shape);
    if (mode !== want) throw new Error(`decodeTensors: ${what} is written in mode ${mode} where ${kind} writes a tensor of shape [${shape}] in mode ${want}`);
    const n = sizeOf(shape);
    switch (mode) {
      case Mode.raw:
        return r.f32s(n, `the values of ${what}`);
      case Mode.int8: {
        const block = (c as { block: number }).block;
        const scales = r.f32s(Math.ceil(n / block), `the int8 scales of ${what}`);
        for (let b = 0; b < scales.length; b++) {
          if (scales[b] < 0) throw new Error(`decodeTensors: the int8 scale of block ${b} of ${what} is negative (${scales[b]})`);
        }
        const q = r.i8s(n, `the int8 values of ${what}`);
        const d = new Float32Array(n);
        for (let i = 0; i < n; i++) {
          if (q[i] === -128) throw new Error(`decodeTensors: int8 value ${i} of ${what} is -128, outside -127..127`);
          d[i] = q[i] * scales[Math.floor(i / block)];
        }
        return checkFinite(d, what);
      }
      case Mode.topk: {
        const k = r.u32(`the topk count of ${what}`);
        if (k > n || (k === 0 && n > 0)) throw new Error(`decodeTensors: ${what} keeps ${k} values of ${n} (must be 1..${n})`);
        const idx = r.u32s(k, `the topk indices of ${what}`);
        for (let j = 0; j < k; j++) {
          if (idx[j] >= n) throw new Error(`decodeTensors: topk index ${idx[j]} of ${what} is outside 0..${n - 1}`);
          if (j > 0 && idx[j] <= idx[j - 1]) throw new Error(`decodeTensors: topk indices of ${what} are not strictly increasing (${idx[j - 1]} then ${idx[j]})`);
        }
        const values = r.f32s(k, `the topk values of ${what}`);
        const d = new Float32Array(n);
        for (let j = 0; j < k; j++) d[idx[j]] = values[j];
        return d;
      }
      default: {
        // Mode.factors (modeFor admits nothing else).
        const [rows, cols] = shape;
        const rank = (c as { rank: number }).rank;
        const p = r.f32s(rows * rank, `the PowerSGD factor P of ${what}`);
        const q = r.f32s(cols * rank, `the PowerSGD factor Q of ${what}`);
        return checkFinite(lowRankProduct(p, q, rows, cols, rank), what);
      }
    }
  });
  if (r.left > 0) throw new Error(`decodeTensors: ${r.left} bytes trail the last tensor (at offset ${r.offset})`);
  return out;
}

/** P·Qᵀ for P [n×r], Q [m×r], row-major; each value summed in float64 over the rank in order, then rounded to float32. */
function lowRankProduct(p: Float32Array, q: Float32Array, n: number, m: number, r: number): Float32Array {
  const out = new Float32Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let c = 0; c < r; c++) s += p[i * r + c] * q[j * r + c];
      out[i * m + j] = s;
    }
  }
  return out;
}
