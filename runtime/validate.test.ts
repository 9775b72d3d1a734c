import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Header, PROTOCOL_VERSION } from './protocol.js';
import { toBytes } from './tensor.js';
import { validateMessage, type Expectation } from './validate.js';

const expect: Expectation = {
  deployment: 'm',
  index: 2,
  port: 'fwd',
  checkShape: (_port, shape) => (shape[1] === 3 ? null : `must be [rows, 3], got [${shape}]`),
};

function msg(over: Record<string, string | undefined> = {}, data: Float32Array | Uint8Array = new Float32Array(6)) {
  const h = new Map<string, string>(
    Object.entries({
      [Header.Version]: String(PROTOCOL_VERSION),
      [Header.Kind]: 'fwd',
      [Header.Deployment]: 'm',
      [Header.VNode]: '2',
      [Header.Seq]: '7',
      [Header.Shape]: '2,3',
      [Header.DType]: 'f32',
      [Header.Epoch]: '1',
      ...over,
    }).filter((e): e is [string, string] => e[1] !== undefined),
  );
  const bytes = data instanceof Float32Array ? toBytes(data) : data;
  return validateMessage({ get: (k) => h.get(k) ?? '' }, bytes, expect);
}

const rejects = (v: ReturnType<typeof msg>, pattern: RegExp) => {
  assert.is(v.ok, false);
  if (!v.ok) assert.match(v.error, pattern);
};

test('a well-formed message passes with its tensor', () => {
  const v = msg({}, Float32Array.of(1, 2, 3, 4, 5, 6));
  assert.ok(v.ok);
  if (v.ok) {
    assert.equal(v.msg.tensor!.shape, [2, 3]);
    assert.equal([...v.msg.tensor!.data], [1, 2, 3, 4, 5, 6]);
    assert.is(v.msg.seq, 7);
  }
});

test('no headers / garbage', () => {
  const v = validateMessage(undefined, new Uint8Array([1, 2, 3]), expect);
  rejects(v, /not a DCNR message/);
});
test('wrong protocol version', () => rejects(msg({ [Header.Version]: '99' }), /protocol version "99" is not supported/));
test('unknown kind', () => rejects(msg({ [Header.Kind]: 'explode' }), /unknown message kind "explode"/));
test('kind on the wrong port', () => rejects(msg({ [Header.Kind]: 'bwd' }), /cannot be delivered to the fwd port/));
test('wrong deployment or vnode', () => {
  rejects(msg({ [Header.Deployment]: 'x' }), /deployment "x"/);
  rejects(msg({ [Header.VNode]: '3' }), /VNode "3"/);
});
test('bad seq', () => {
  for (const s of ['-1', '1.5', 'abc', '', '01', '99999999999999999999']) rejects(msg({ [Header.Seq]: s }), /seq .* is not a non-negative integer/);
});
test('bad dtype', () => rejects(msg({ [Header.DType]: 'f64' }), /dtype "f64" is not supported/));
test('bad shapes', () => {
  for (const s of ['', '2,0', '2,-3', 'a,b', '1,1,1,1,1']) rejects(msg({ [Header.Shape]: s }), /shape .* is not/);
});
test('length mismatch', () => rejects(msg({}, new Float32Array(5)), /payload is 20 bytes but shape \[2,3\] of f32 needs 24/));
test('odd byte count', () => rejects(msg({}, new Uint8Array(23)), /payload is 23 bytes/));
test('shape rejected by the mailbox', () => rejects(msg({ [Header.Shape]: '3,2' }), /must be \[rows, 3\]/));
test('NaN and Infinity', () => {
  rejects(msg({}, Float32Array.of(0, 0, NaN, 0, 0, 0)), /non-finite value \(NaN\) at element 2/);
  rejects(msg({}, Float32Array.of(0, 0, 0, 0, 0, -Infinity)), /non-finite value \(-Infinity\) at element 5/);
});
test('oversize', () => rejects(msg({ [Header.Shape]: '1000000,3' }, new Float32Array(300000)), /is 12000000 bytes, over the 8388608-byte limit/));
test('end carries no payload', () => {
  assert.ok(msg({ [Header.Kind]: 'end', [Header.Shape]: undefined, [Header.DType]: undefined }, new Uint8Array(0)).ok);
  rejects(msg({ [Header.Kind]: 'end' }, new Uint8Array(4)), /end message carries no payload/);
});
test('a throwing header reader is a rejection, not a crash', () => {
  const v = validateMessage({ get: () => { throw new Error('boom'); } }, new Uint8Array(0), expect);
  rejects(v, /missing Dcnr-Version/);
});

test('a federated frame: dtype bytes on delta and sync only, its bits not read as numbers (the receiver decodes it)', () => {
  const frame = new Uint8Array([4, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f]); // a NaN's bits as a float
  const at = (port: 'delta' | 'sync' | 'fwd', over: Record<string, string>) =>
    validateMessage({ get: (k) => ({ [Header.Version]: String(PROTOCOL_VERSION), [Header.Deployment]: 'm', [Header.VNode]: '2', [Header.Seq]: '0', [Header.Shape]: '2', ...over })[k] ?? '' }, frame, { deployment: 'm', index: 2, port });
  const ok = at('sync', { [Header.Kind]: 'sync', [Header.DType]: 'bytes' });
  assert.ok(ok.ok);
  if (ok.ok) assert.is(new Uint8Array(ok.msg.tensor!.data.buffer, ok.msg.tensor!.data.byteOffset, 8)[7], 0x7f, 'bytes kept as they came');
  assert.ok(at('delta', { [Header.Kind]: 'delta', [Header.DType]: 'bytes' }).ok);
  const f32 = at('delta', { [Header.Kind]: 'delta', [Header.DType]: 'f32' });
  assert.ok(!f32.ok && /a delta message carries dtype bytes, got "f32"/.test(f32.error));
  const fwd = at('fwd', { [Header.Kind]: 'fwd', [Header.DType]: 'bytes' });
  assert.ok(!fwd.ok && /a fwd message carries dtype f32, got "bytes"/.test(fwd.error));
  const wrongPort = at('fwd', { [Header.Kind]: 'sync', [Header.DType]: 'bytes' });
  assert.ok(!wrongPort.ok && /cannot be delivered to the fwd port/.test(wrongPort.error));
});

test.run();
