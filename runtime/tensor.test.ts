/** tensor.ts: the finiteness scan and wire-bytes decoding, against the obvious definitions. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { firstNonFinite, fromBytes, toBytes } from './tensor.js';

const naive = (d: Float32Array) => d.findIndex((x) => !Number.isFinite(x));

test('firstNonFinite: -1 for finite values (the extremes included), the first index of NaN or ±Inf anywhere', () => {
  for (const n of [0, 1, 3, 4, 5, 7, 8, 1023]) {
    const d = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 1e3);
    if (n > 2) d.set([3.4028234663852886e38, -3.4028234663852886e38, 1e-45], 0);
    assert.is(firstNonFinite(d), -1, `n ${n}`);
    for (const bad of [NaN, Infinity, -Infinity]) {
      for (const at of [0, Math.floor(n / 2), n - 1]) {
        if (n === 0) continue;
        const e = d.slice();
        e[at] = bad;
        if (at + 1 < n) e[n - 1] = NaN; // a later one must not win
        assert.is(firstNonFinite(e), naive(e), `n ${n}, ${bad} at ${at}`);
      }
    }
  }
});

test('fromBytes: a view when aligned, a copy when not, the same values either way; a ragged length is refused', () => {
  const values = Float32Array.from({ length: 33 }, (_, i) => i / 7 - 2);
  const aligned = toBytes(values);
  const view = fromBytes(aligned);
  assert.is(view.buffer, values.buffer, 'no copy');
  assert.equal([...view], [...values]);
  const shifted = new Uint8Array(aligned.byteLength + 1);
  shifted.set(aligned, 1);
  const copy = fromBytes(shifted.subarray(1));
  assert.is.not(copy.buffer, shifted.buffer);
  assert.equal([...copy], [...values]);
  assert.throws(() => fromBytes(new Uint8Array(6)), /6 bytes is not a whole number of float32s/);
});

test.run();
