import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createRng, type Rng } from '../rng.js';
import {
  compressionText,
  decodeTensors,
  encodeTensors,
  parseCompression,
  rawBytes,
  type Compression,
  type EncodeInput,
} from './compress.js';

// ── helpers ──────────────────────────────────────────────────────────────────

const HEADER = 13; // magic 3 + version 1 + kind 1 + parameter 4 + count 4
const TENSOR_HEADER = 9; // name hash 4 + shape hash 4 + mode 1

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const randoms = (rng: Rng, n: number, scale = 1) => Float32Array.from({ length: n }, () => scale * (2 * rng.next() - 1));
const input = (name: string, shape: number[], data: Float32Array, residual: Float32Array = new Float32Array(data.length)): EncodeInput => ({ name, shape, data, residual });
const layer = (seed: string, shapes: Array<[string, number[]]>): EncodeInput[] => {
  const rng = createRng(seed);
  return shapes.map(([name, shape]) => input(name, shape, randoms(rng, size(shape))));
};
const bytesOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const sameBits = (a: Float32Array, b: Float32Array) => a.length === b.length && bytesOf(a).equals(bytesOf(b));
const KINDS: Compression[] = [{ kind: 'none' }, { kind: 'int8', block: 256 }, { kind: 'int8', block: 7 }, { kind: 'topk', fraction: 0.1 }, { kind: 'powersgd', rank: 2 }];
const SMALL: Array<[string, number[]]> = [['W', [5, 6]], ['b', [6]]];

/** The Error `fn` throws: a plain Error (not a RangeError or TypeError) with one sentence. */
function cleanError(fn: () => unknown, pattern?: RegExp): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof Error && e.constructor === Error, `not a plain Error: ${e}`);
    const message = (e as Error).message;
    assert.not.match(message, /\n/);
    if (pattern) assert.match(message, pattern);
    return message;
  }
  assert.unreachable('did not throw');
  return '';
}

/** A copy of `bytes` with `edit` applied through a DataView. */
function edited(bytes: Uint8Array, edit: (v: DataView) => void): Uint8Array {
  const copy = bytes.slice();
  edit(new DataView(copy.buffer));
  return copy;
}

// ── plain-JS references ──────────────────────────────────────────────────────

function int8Reference(v: Float32Array, block: number): { scales: number[]; q: number[]; decoded: Float32Array } {
  const scales: number[] = [];
  const q: number[] = [];
  const decoded = new Float32Array(v.length);
  for (let lo = 0; lo < v.length; lo += block) {
    const chunk = Array.from(v.subarray(lo, lo + block));
    const scale = Math.fround(Math.max(...chunk.map(Math.abs)) / 127);
    scales.push(scale);
    chunk.forEach((x, i) => {
      // `+ 0`: an int8 has no -0 (Math.round(-0.3) is -0), so neither has q·scale.
      const qi = (scale === 0 ? 0 : Math.max(-127, Math.min(127, Math.round(x / scale)))) + 0;
      q.push(qi);
      decoded[lo + i] = Math.fround(qi * scale);
    });
  }
  return { scales, q, decoded };
}

function topkReference(v: Float32Array, fraction: number): number[] {
  const k = Math.max(1, Math.ceil(fraction * v.length));
  const order = Array.from(v, (x, i) => i).sort((a, b) => Math.abs(v[b]) - Math.abs(v[a]) || a - b);
  return order.slice(0, k).sort((a, b) => a - b);
}

/** P [n×r] and Q [m×r] as the documented layout puts them, for the first tensor of a buffer. */
function readFactors(bytes: Uint8Array, n: number, m: number, r: number): { p: Float32Array; q: Float32Array } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = HEADER + TENSOR_HEADER;
  const read = (from: number, count: number) => Float32Array.from({ length: count }, (_, i) => view.getFloat32(from + 4 * i, true));
  return { p: read(at, n * r), q: read(at + 4 * n * r, m * r) };
}

function matmulTransposed(p: Float32Array, q: Float32Array, n: number, m: number, r: number): Float64Array {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) for (let c = 0; c < r; c++) out[i * m + j] += p[i * r + c] * q[j * r + c];
  return out;
}

/** A [n×m] matrix of exact rank `rank` (sum of `rank` random outer products). */
function lowRank(rng: Rng, n: number, m: number, rank: number): Float32Array {
  const a = randoms(rng, n * rank);
  const b = randoms(rng, m * rank);
  return Float32Array.from(matmulTransposed(a, b, n, m, rank));
}

const relativeError = (got: ArrayLike<number>, want: ArrayLike<number>) => {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num += (got[i] - want[i]) ** 2;
    den += want[i] ** 2;
  }
  return Math.sqrt(num / den);
};

// ── parseCompression / compressionText ───────────────────────────────────────

const parse = suite('parseCompression');

parse('accepts every form and round-trips through compressionText', () => {
  const cases: Array<[string, Compression, string]> = [
    ['none', { kind: 'none' }, 'none'],
    ['int8', { kind: 'int8', block: 256 }, 'int8:256'],
    ['int8:64', { kind: 'int8', block: 64 }, 'int8:64'],
    ['topk:0.01', { kind: 'topk', fraction: 0.01 }, 'topk:0.01'],
    ['topk:1', { kind: 'topk', fraction: 1 }, 'topk:1'],
    ['topk:.5', { kind: 'topk', fraction: 0.5 }, 'topk:0.5'],
    ['topk:1e-3', { kind: 'topk', fraction: 0.001 }, 'topk:0.001'],
    ['powersgd:1', { kind: 'powersgd', rank: 1 }, 'powersgd:1'],
    ['powersgd:64', { kind: 'powersgd', rank: 64 }, 'powersgd:64'],
  ];
  for (const [text, c, canonical] of cases) {
    assert.equal(parseCompression(text), c, text);
    assert.is(compressionText(c), canonical);
    assert.equal(parseCompression(compressionText(c)), c);
  }
  const tiny: Compression = { kind: 'topk', fraction: 1e-7 };
  assert.equal(parseCompression(compressionText(tiny)), tiny);
});

parse('refuses a bad kind or argument with one sentence naming it and the accepted forms', () => {
  const refused: Array<[string, RegExp]> = [
    ['topk:0', /fraction 0 is not a number with 0 < F <= 1/],
    ['topk:2', /fraction 2 /],
    ['topk:-0.1', /fraction "-0.1" is not a number/],
    ['topk:abc', /fraction "abc"/],
    ['topk', /topk needs the kept fraction/],
    ['topk:', /fraction "" is not a number/],
    ['powersgd:0', /rank 0 is not a whole number from 1 to 64/],
    ['powersgd:65', /rank 65 /],
    ['powersgd:1.5', /rank "1.5" is not a whole number/],
    ['powersgd', /powersgd needs the rank/],
    ['int8:0', /block 0 is not a whole number/],
    ['int8:-1', /block size "-1"/],
    ['int8:abc', /block size "abc"/],
    ['gzip', /"gzip" is not a compression kind/],
    ['', /"" is not a compression kind/],
    ['NONE', /"NONE" is not a compression kind/],
    ['none:1', /none takes no argument/],
    [' int8', /" int8" is not a compression kind/],
  ];
  for (const [text, why] of refused) {
    const message = cleanError(() => parseCompression(text), why);
    assert.ok(message.includes(JSON.stringify(text)), message);
    assert.match(message, /accepted forms: none, int8, int8:BLOCK, topk:F or powersgd:R/);
  }
  cleanError(() => compressionText({ kind: 'topk', fraction: 0 }), /fraction 0/);
});

parse.run();

// ── encodeTensors, each kind against its reference ───────────────────────────

const encode = suite('encodeTensors');

encode('none: the raw float32 of data + residual; the residual becomes zero', () => {
  const rng = createRng('none');
  const t = input('W', [4, 5], randoms(rng, 20), randoms(rng, 20, 0.1));
  const { bytes, decoded, residuals } = encodeTensors({ kind: 'none' }, [t], 's');
  assert.is(bytes.length, HEADER + TENSOR_HEADER + 4 * 20);
  assert.ok(sameBits(decoded[0], Float32Array.from(t.data, (x, i) => x + t.residual[i])));
  assert.ok(residuals[0].every((x) => x === 0));
});

encode('int8: per-block scale max|x|/127 and round(x/scale), as the reference; a zero block has scale 0', () => {
  const rng = createRng('int8');
  for (const block of [256, 7, 1, 5000]) {
    const data = randoms(rng, 1000, 3);
    data.fill(0, 256, 512); // a whole block of zeros at block 256
    data[3] = 1e-44; // a block of 1 value rounding to scale 0
    const t = input('W', [40, 25], data);
    const { bytes, decoded, residuals } = encodeTensors({ kind: 'int8', block }, [t], 's');
    const ref = int8Reference(data, block);
    const view = new DataView(bytes.buffer);
    let at = HEADER + TENSOR_HEADER;
    assert.is(bytes.length, at + 4 * ref.scales.length + 1000, `block ${block}`);
    ref.scales.forEach((s, b) => assert.is(view.getFloat32(at + 4 * b, true), s));
    at += 4 * ref.scales.length;
    ref.q.forEach((q, i) => assert.is(view.getInt8(at + i), q));
    assert.ok(sameBits(decoded[0], ref.decoded));
    assert.ok(residuals[0].every((r, i) => r === Math.fround(data[i] - ref.decoded[i])));
  }
});

encode('topk: the k = max(1, ceil(F·n)) largest |x|, ties to the lower index, as the reference; the rest decodes to 0', () => {
  const rng = createRng('topk');
  const data = Float32Array.from({ length: 500 }, () => rng.int(9) - 4); // many ties
  for (const fraction of [0.1, 0.013, 1e-9, 1]) {
    const { bytes, decoded, residuals } = encodeTensors({ kind: 'topk', fraction }, [input('W', [20, 25], data)], 's');
    const want = topkReference(data, fraction);
    const view = new DataView(bytes.buffer);
    const at = HEADER + TENSOR_HEADER;
    assert.is(view.getUint32(at, true), want.length);
    assert.equal(Array.from({ length: want.length }, (_, j) => view.getUint32(at + 4 + 4 * j, true)), want, `fraction ${fraction}`);
    const kept = new Set(want);
    decoded[0].forEach((x, i) => assert.is(x, kept.has(i) ? data[i] : 0));
    residuals[0].forEach((r, i) => assert.is(r, kept.has(i) ? 0 : data[i]));
  }
});

encode('powersgd: P·Qᵀ of the sent factors is the reference matmul; P has orthonormal columns', () => {
  const rng = createRng('psgd');
  const [n, m, r] = [30, 20, 3];
  const t = input('W', [n, m], randoms(rng, n * m));
  const { bytes, decoded } = encodeTensors({ kind: 'powersgd', rank: r }, [t], 'seed');
  assert.is(bytes.length, HEADER + TENSOR_HEADER + 4 * r * (n + m));
  const { p, q } = readFactors(bytes, n, m, r);
  const ref = matmulTransposed(p, q, n, m, r);
  decoded[0].forEach((x, i) => assert.ok(Math.abs(x - ref[i]) <= 1e-6 * (1 + Math.abs(ref[i])), `${i}: ${x} vs ${ref[i]}`));
  for (let a = 0; a < r; a++) {
    for (let b = 0; b < r; b++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += p[i * r + a] * p[i * r + b];
      assert.ok(Math.abs(dot - (a === b ? 1 : 0)) < 1e-5, `PᵀP[${a},${b}] = ${dot}`);
    }
  }
});

encode('powersgd: a matrix of rank <= r is reconstructed within 1e-4 relative', () => {
  const rng = createRng('exact');
  for (const [n, m, exact, r] of [
    [64, 48, 4, 4],
    [64, 48, 2, 4],
    [784, 128, 4, 4],
    [10, 12, 1, 1],
  ]) {
    const data = lowRank(rng, n, m, exact);
    const { decoded } = encodeTensors({ kind: 'powersgd', rank: r }, [input('W', [n, m], data)], 'seed');
    const err = relativeError(decoded[0], data);
    assert.ok(err < 1e-4, `[${n}x${m}] rank ${exact} at r=${r}: relative error ${err}`);
  }
  const zero = encodeTensors({ kind: 'powersgd', rank: 2 }, [input('W', [6, 5], new Float32Array(30))], 's');
  assert.ok(zero.decoded[0].every((x) => x === 0), 'a zero matrix: zero columns stay zero');
});

encode('powersgd: 1-D tensors and those too small for the rank go raw in the same buffer', () => {
  const ts = layer('mixed', [['W', [12, 10]], ['b', [10]], ['small', [3, 10]], ['cube', [2, 3, 4]], ['scalar', []]]);
  const { bytes, decoded, residuals } = encodeTensors({ kind: 'powersgd', rank: 3 }, ts, 's');
  const rawOnes = ts.slice(1);
  assert.is(bytes.length, HEADER + ts.length * TENSOR_HEADER + 4 * 3 * (12 + 10) + rawBytes(rawOnes.map((t) => t.shape)));
  rawOnes.forEach((t, i) => {
    assert.ok(sameBits(decoded[i + 1], t.data), t.name);
    assert.ok(residuals[i + 1].every((x) => x === 0));
  });
});

encode('never mutates its inputs, and refuses bad inputs with one sentence', () => {
  const ts = layer('mut', SMALL).map((t) => ({ ...t, residual: Float32Array.from(t.data, (x) => x / 3) }));
  const copies = ts.map((t) => ({ data: t.data.slice(), residual: t.residual.slice(), shape: [...t.shape] }));
  for (const c of KINDS) encodeTensors(c, ts, 's');
  ts.forEach((t, i) => {
    assert.ok(sameBits(t.data, copies[i].data) && sameBits(t.residual, copies[i].residual));
    assert.equal(t.shape, copies[i].shape);
  });
  cleanError(() => encodeTensors({ kind: 'none' }, [input('W', [2, 3], new Float32Array(5))], 's'), /needs 6 values, has data 5/);
  cleanError(() => encodeTensors({ kind: 'none' }, [input('W', [2], new Float32Array(2), new Float32Array(3))], 's'), /residual 3/);
  cleanError(() => encodeTensors({ kind: 'int8', block: 4 }, [input('W', [2], Float32Array.of(1, NaN))], 's'), /non-finite value at 1/);
  cleanError(() => encodeTensors({ kind: 'none' }, [input('W', [2], Float32Array.of(3e38, 0), Float32Array.of(3e38, 0))], 's'), /non-finite value at 0/);
  cleanError(() => encodeTensors({ kind: 'powersgd', rank: 0 }, [], 's'), /rank 0/);
  cleanError(() => encodeTensors({ kind: 'zip' } as unknown as Compression, [], 's'), /kind "zip"/);
  cleanError(() => encodeTensors({ kind: 'none' }, [input('W', [-1], new Float32Array(0))], 's'), /not a list of whole numbers/);
});

encode.run();

// ── round trip and determinism ───────────────────────────────────────────────

const trip = suite('round trip and determinism');

trip('decodeTensors(bytes) is bit-identical to the decoded arrays the sender applies, for every kind, at any byte offset', () => {
  const shapes: Array<[string, number[]]> = [['W', [37, 23]], ['b', [23]], ['empty', [0, 4]], ['one', [1]]];
  for (const c of [...KINDS, { kind: 'topk', fraction: 0.001 } as Compression, { kind: 'powersgd', rank: 8 } as Compression]) {
    const ts = layer(`trip/${c.kind}`, shapes);
    const { bytes, decoded } = encodeTensors(c, ts, 's');
    const out = decodeTensors(bytes, ts);
    out.forEach((x, i) => assert.ok(sameBits(x, decoded[i]), `${compressionText(c)} tensor ${i}`));
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    decodeTensors(shifted.subarray(3), ts).forEach((x, i) => assert.ok(sameBits(x, decoded[i]), 'unaligned view'));
  }
});

trip('same inputs and seed give the same bytes; another seed changes only powersgd', () => {
  for (const c of KINDS) {
    const a = encodeTensors(c, layer('det', [['W', [40, 30]], ['b', [30]]]), 'round-1');
    const b = encodeTensors(c, layer('det', [['W', [40, 30]], ['b', [30]]]), 'round-1');
    const other = encodeTensors(c, layer('det', [['W', [40, 30]], ['b', [30]]]), 'round-2');
    assert.ok(Buffer.from(a.bytes).equals(Buffer.from(b.bytes)), compressionText(c));
    a.residuals.forEach((r, i) => assert.ok(sameBits(r, b.residuals[i])));
    assert.is(Buffer.from(a.bytes).equals(Buffer.from(other.bytes)), c.kind !== 'powersgd', compressionText(c));
  }
});

trip.run();

// ── error feedback ───────────────────────────────────────────────────────────

const feedback = suite('error feedback');

feedback('over many rounds, the sum of decoded + the last residual equals the sum of inputs', () => {
  for (const c of [...KINDS, { kind: 'topk', fraction: 0.02 } as Compression]) {
    const rng = createRng(`ef/${c.kind}`);
    const shapes: Array<[string, number[]]> = [['W', [20, 30]], ['b', [30]]];
    const sumIn = shapes.map(([, s]) => new Float64Array(size(s)));
    const sumOut = shapes.map(([, s]) => new Float64Array(size(s)));
    let residuals: Float32Array[] = shapes.map(([, s]) => new Float32Array(size(s)));
    for (let round = 0; round < 60; round++) {
      const ts = shapes.map(([name, shape], t) => input(name, shape, randoms(rng, size(shape), 0.5 + rng.next()), residuals[t]));
      const e = encodeTensors(c, ts, `round-${round}`);
      ts.forEach((t, i) => t.data.forEach((x, j) => (sumIn[i][j] += x)));
      e.decoded.forEach((d, i) => d.forEach((x, j) => (sumOut[i][j] += x)));
      residuals = e.residuals;
    }
    sumIn.forEach((want, i) =>
      want.forEach((x, j) => {
        const got = sumOut[i][j] + residuals[i][j];
        assert.ok(Math.abs(got - x) <= 1e-4 * (1 + Math.abs(x) + Math.abs(residuals[i][j])), `${compressionText(c)} ${i}/${j}: ${got} vs ${x}`);
      }),
    );
  }
});

feedback('topk with error feedback eventually transmits every coordinate, and all of its mass', () => {
  const n = 200;
  const g = Float32Array.from({ length: n }, (_, i) => 0.1 + (0.9 * ((i * 37) % n)) / (n - 1)); // 10× spread, shuffled
  const sent = new Uint8Array(n);
  const total = new Float64Array(n);
  let residual: Float32Array = new Float32Array(n);
  const rounds = 600;
  for (let round = 0; round < rounds; round++) {
    const e = encodeTensors({ kind: 'topk', fraction: 0.05 }, [input('W', [n], g, residual)], 's');
    e.decoded[0].forEach((x, i) => {
      if (x !== 0) sent[i] = 1;
      total[i] += x;
    });
    residual = e.residuals[0];
  }
  assert.is(sent.reduce((a, b) => a + b, 0), n, 'every coordinate was sent at least once');
  total.forEach((x, i) => assert.ok(Math.abs(x + residual[i] - rounds * g[i]) <= 1e-5 * rounds * g[i], `${i}`));
  // No coordinate starves: what is still held back is a bounded number of rounds' worth.
  residual.forEach((r, i) => assert.ok(r < 0.5 * rounds * g[i], `${i} holds ${r}`));
});

feedback.run();

// ── sizes ────────────────────────────────────────────────────────────────────

const sizes = suite('compression ratios');

sizes('topk:0.01 on 100k floats < 2.5% of raw; int8 ~26%; powersgd:4 on 784×128 < 5%', () => {
  const big = layer('big', [['x', [100_000]]]);
  const raw = rawBytes([[100_000]]);
  assert.is(raw, 400_000);
  const topk = encodeTensors({ kind: 'topk', fraction: 0.01 }, big, 's').bytes.length;
  assert.ok(topk < 0.025 * raw, `topk ${topk}`);
  const int8 = encodeTensors({ kind: 'int8', block: 256 }, big, 's').bytes.length;
  assert.ok(int8 > 0.25 * raw && int8 < 0.27 * raw, `int8 ${int8}`);
  const mat = layer('mat', [['W', [784, 128]]]);
  const psgd = encodeTensors({ kind: 'powersgd', rank: 4 }, mat, 's').bytes.length;
  assert.ok(psgd < 0.05 * rawBytes([[784, 128]]), `powersgd ${psgd}`);
});

sizes('a 784×128 + 128 layer takes the bytes docs/federated.md states', () => {
  const ts = layer('mnist', [['W', [784, 128]], ['b', [128]]]);
  assert.is(rawBytes(ts.map((t) => t.shape)), 401_920);
  const got = Object.fromEntries(['none', 'int8', 'topk:0.01', 'powersgd:4'].map((k) => [k, encodeTensors(parseCompression(k), ts, 's').bytes.length]));
  assert.equal(got, { none: 401_951, int8: 102_083, 'topk:0.01': 8_087, 'powersgd:4': 15_135 });
});

sizes.run();

// ── decodeTensors on malformed input ─────────────────────────────────────────

const malformed = suite('decodeTensors refuses malformed input');

malformed('every truncation and any trailing byte', () => {
  for (const c of KINDS) {
    const ts = layer('trunc', SMALL);
    const { bytes } = encodeTensors(c, ts, 's');
    for (let len = 0; len < bytes.length; len++) cleanError(() => decodeTensors(bytes.subarray(0, len), ts), /^decodeTensors: /);
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    cleanError(() => decodeTensors(longer, ts), /1 bytes trail the last tensor/);
  }
});

malformed('wrong expected names, shapes or counts', () => {
  const ts = layer('expect', SMALL);
  const { bytes } = encodeTensors({ kind: 'int8', block: 256 }, ts, 's');
  cleanError(() => decodeTensors(bytes, [{ name: 'V', shape: [5, 6] }, ts[1]]), /tensor 0 \("V"\) on the wire has another name/);
  cleanError(() => decodeTensors(bytes, [{ name: 'W', shape: [6, 5] }, ts[1]]), /another shape than \[6,5\]/);
  cleanError(() => decodeTensors(bytes, [ts[1], ts[0]]), /another name/);
  cleanError(() => decodeTensors(bytes, [ts[0]]), /holds 2 tensors, 1 expected/);
  cleanError(() => decodeTensors(bytes, [...ts, ts[1]]), /holds 2 tensors, 3 expected/);
  cleanError(() => decodeTensors(bytes, [{ name: 'W', shape: [5, -6] }, ts[1]]), /not a list of whole numbers/);
  cleanError(() => decodeTensors(bytes, [{ name: 'W', shape: [2.5, 12] }, ts[1]]), /not a list of whole numbers/);
  cleanError(() => decodeTensors('DCZ' as unknown as Uint8Array, ts), /not a Uint8Array/);
});

malformed('bad header: magic, version, kind, parameter', () => {
  const ts = layer('header', SMALL);
  const int8 = encodeTensors({ kind: 'int8', block: 4 }, ts, 's').bytes;
  const psgd = encodeTensors({ kind: 'powersgd', rank: 2 }, ts, 's').bytes;
  const none = encodeTensors({ kind: 'none' }, ts, 's').bytes;
  cleanError(() => decodeTensors(edited(int8, (v) => v.setUint8(0, 0x58)), ts), /magic 'DCZ'/);
  cleanError(() => decodeTensors(edited(int8, (v) => v.setUint8(3, 2)), ts), /format version 2/);
  cleanError(() => decodeTensors(edited(int8, (v) => v.setUint8(4, 9)), ts), /kind code 9/);
  cleanError(() => decodeTensors(edited(int8, (v) => v.setUint8(4, 2)), ts), /topk takes no parameter but the header has 4/);
  cleanError(() => decodeTensors(edited(int8, (v) => v.setUint32(5, 0, true)), ts), /int8 block 0/);
  cleanError(() => decodeTensors(edited(int8, (v) => v.setUint32(5, 5, true)), ts), /^decodeTensors: /); // other block: lengths no longer fit
  cleanError(() => decodeTensors(edited(psgd, (v) => v.setUint32(5, 65, true)), ts), /rank 65/);
  cleanError(() => decodeTensors(edited(psgd, (v) => v.setUint32(5, 0, true)), ts), /rank 0/);
  cleanError(() => decodeTensors(edited(none, (v) => v.setUint32(5, 1, true)), ts), /none takes no parameter/);
  cleanError(() => decodeTensors(edited(none, (v) => v.setUint8(HEADER + 8, 1)), ts), /mode 1 where none writes/);
  cleanError(() => decodeTensors(edited(psgd, (v) => v.setUint8(HEADER + 8, 0)), ts), /mode 0 where powersgd writes a tensor of shape \[5,6\] in mode 3/);
});

malformed('non-finite values, bad int8 scales and codes, float32 overflow', () => {
  const ts = layer('values', SMALL);
  const at = HEADER + TENSOR_HEADER;
  const none = encodeTensors({ kind: 'none' }, ts, 's').bytes;
  cleanError(() => decodeTensors(edited(none, (v) => v.setFloat32(at + 8, NaN, true)), ts), /values of tensor 0 \("W"\) holds a non-finite value \(NaN\) at position 2/);
  cleanError(() => decodeTensors(edited(none, (v) => v.setFloat32(none.length - 4, -Infinity, true)), ts), /tensor 1 \("b"\).*-Infinity/);
  const int8 = encodeTensors({ kind: 'int8', block: 4 }, ts, 's').bytes; // W: 8 scales then 30 codes
  cleanError(() => decodeTensors(edited(int8, (v) => v.setFloat32(at, NaN, true)), ts), /int8 scales .* non-finite/);
  cleanError(() => decodeTensors(edited(int8, (v) => v.setFloat32(at + 4, -0.5, true)), ts), /scale of block 1 .* is negative/);
  cleanError(() => decodeTensors(edited(int8, (v) => v.setInt8(at + 32 + 5, -128)), ts), /int8 value 5 .* is -128/);
  cleanError(() => decodeTensors(edited(int8, (v) => (v.setFloat32(at, 3.4e38, true), v.setInt8(at + 32, 127))), ts), /non-finite value at 0 \(float32 overflow\)/);
  const psgd = encodeTensors({ kind: 'powersgd', rank: 2 }, ts, 's').bytes;
  cleanError(() => decodeTensors(edited(psgd, (v) => v.setFloat32(at + 4 * 10, Infinity, true)), ts), /factor Q .* non-finite/);
  cleanError(() => decodeTensors(edited(psgd, (v) => (v.setFloat32(at, 3e38, true), v.setFloat32(at + 40, 3e38, true))), ts), /float32 overflow/);
});

malformed('topk: counts, indices out of range, unsorted or repeated, non-finite values', () => {
  const ts = layer('topk', SMALL);
  const { bytes } = encodeTensors({ kind: 'topk', fraction: 0.2 }, ts, 's'); // W keeps 6 of 30
  const at = HEADER + TENSOR_HEADER;
  const view = new DataView(bytes.buffer);
  const idx = (j: number) => view.getUint32(at + 4 + 4 * j, true);
  assert.is(view.getUint32(at, true), 6);
  cleanError(() => decodeTensors(edited(bytes, (v) => v.setUint32(at, 0, true)), ts), /keeps 0 values of 30/);
  cleanError(() => decodeTensors(edited(bytes, (v) => v.setUint32(at, 31, true)), ts), /keeps 31 values of 30/);
  cleanError(() => decodeTensors(edited(bytes, (v) => v.setUint32(at, 0xffffffff, true)), ts), /keeps 4294967295 values/);
  cleanError(() => decodeTensors(edited(bytes, (v) => v.setUint32(at + 4 + 20, 30, true)), ts), /index 30 .* outside 0\.\.29/);
  cleanError(() => decodeTensors(edited(bytes, (v) => v.setUint32(at + 4 + 20, 0xffffffff, true)), ts), /index 4294967295/);
  cleanError(() => decodeTensors(edited(bytes, (v) => (v.setUint32(at + 4, idx(1), true), v.setUint32(at + 8, idx(0), true))), ts), /not strictly increasing/);
  cleanError(() => decodeTensors(edited(bytes, (v) => v.setUint32(at + 8, idx(0), true)), ts), /not strictly increasing \((\d+) then \1\)/);
  cleanError(() => decodeTensors(edited(bytes, (v) => v.setFloat32(at + 4 + 24, NaN, true)), ts), /topk values .* non-finite/);
});

malformed('fuzz: random buffers and mutated valid ones give a clean Error or finite tensors of the right sizes', () => {
  const rng = createRng('fuzz');
  const ts = layer('fuzz', SMALL);
  const valid = KINDS.map((c) => encodeTensors(c, ts, 's').bytes);
  let refused = 0;
  let decoded = 0;
  const attempt = (bytes: Uint8Array) => {
    let out: Float32Array[];
    try {
      out = decodeTensors(bytes, ts);
    } catch (e) {
      assert.ok(e instanceof Error && e.constructor === Error && /^decodeTensors: [^\n]+$/.test(e.message), `unclean: ${e}`);
      refused++;
      return;
    }
    decoded++;
    assert.equal(out.map((x) => x.length), [30, 6]);
    out.forEach((x) => assert.ok(x.every(Number.isFinite)));
  };
  for (let i = 0; i < 2000; i++) {
    // Pure noise, and noise behind a valid magic/version/kind so it reaches the tensor parsing.
    const noise = Uint8Array.from({ length: rng.int(200) }, () => rng.int(256));
    attempt(noise);
    if (noise.length >= 5) {
      noise.set([0x44, 0x43, 0x5a, 1, rng.int(4)]);
      attempt(noise);
    }
    const base = valid[rng.int(valid.length)];
    const mutated = base.slice();
    for (let flips = 1 + rng.int(3); flips > 0; flips--) mutated[rng.int(mutated.length)] = rng.int(256);
    attempt(mutated);
    attempt(base.subarray(0, rng.int(base.length)));
  }
  assert.ok(refused > 5000 && decoded > 100, `${refused} refused, ${decoded} decoded`);
});

malformed.run();
