/**
 * `malformed-messages`: a seeded fuzzer that puts `count` (default 10,000) bad envelopes
 * straight into the deployment's mailboxes through JetStream — every kind of breakage
 * the validator must catch: versions, kinds, ports, deployments, VNodes, seqs, epochs,
 * dtypes, shapes, byte lengths, NaN/Inf, headerless garbage, payloads on `end`. Each
 * envelope is built valid and then broken in exactly one way (never a way the protocol
 * allows: an absent epoch header, for one, means epoch 0), so every one must be
 * rejected (kept in the dead-letter stream, counted) and none may crash a process.
 */
import { jetstream } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import { envelopeHeaders } from '../../runtime/envelope.js';
import { Header, Subject, type Port } from '../../runtime/protocol.js';
import type { Rng } from '../../runtime/rng.js';
import type { FaultKind } from './types.js';

interface Target {
  index: number;
  port: Port;
  cols: number;
}

/** Every way to break an envelope; each returns the headers and payload to send. */
const MUTATIONS: Array<{ name: string; make(t: Target, dep: string, rng: Rng): { h: ReturnType<typeof headers> | undefined; data: Uint8Array } }> = [
  { name: 'version', make: (t, dep, rng) => valid(t, dep, rng, (h) => h.set(Header.Version, pick(rng, ['0', '2', '99', 'v1', '']))) },
  { name: 'unknown kind', make: (t, dep, rng) => valid(t, dep, rng, (h) => h.set(Header.Kind, pick(rng, ['forward', 'FWD', 'grad', '', 'fwd;drop']))) },
  { name: 'kind for another port', make: (t, dep, rng) => valid(t, dep, rng, (h) => h.set(Header.Kind, t.port === 'fwd' ? 'bwd' : 'fwd')) },
  { name: 'deployment', make: (t, dep, rng) => valid(t, dep, rng, (h) => h.set(Header.Deployment, `${dep}-other`)) },
  { name: 'vnode', make: (t, dep, rng) => valid(t, dep, rng, (h) => h.set(Header.VNode, pick(rng, [String(t.index + 1), '-1', 'x', '']))) },
  { name: 'seq', make: (t, dep, rng) => valid(t, dep, rng, (h) => h.set(Header.Seq, pick(rng, ['-1', '1.5', 'abc', '', '1e3', '9007199254740993']))) },
  { name: 'epoch', make: (t, dep, rng) => valid(t, dep, rng, (h) => h.set(Header.Epoch, pick(rng, ['x', '-', '1.5', '-3']))) },
  { name: 'dtype', make: (t, dep, rng) => valid(t, dep, rng, (h) => h.set(Header.DType, pick(rng, ['f64', 'i32', 'F32', '']))) },
  { name: 'shape text', make: (t, dep, rng) => valid(t, dep, rng, (h) => h.set(Header.Shape, pick(rng, ['0,1', 'a,b', '1,2,3,4,5', '', '-1,4', '1,,2']))) },
  {
    name: 'byte length',
    make: (t, dep, rng) => {
      const e = valid(t, dep, rng);
      const cut = 1 + rng.int(Math.max(1, e.data.byteLength - 1));
      return { h: e.h, data: e.data.subarray(0, e.data.byteLength - cut) };
    },
  },
  {
    name: 'non-finite',
    make: (t, dep, rng) => {
      const e = valid(t, dep, rng);
      const f = new Float32Array(e.data.buffer.slice(0));
      f[rng.int(f.length)] = pick(rng, [NaN, Infinity, -Infinity]);
      return { h: e.h, data: new Uint8Array(f.buffer) };
    },
  },
  {
    name: 'wrong feature count',
    make: (t, dep, rng) => {
      const rows = 1 + rng.int(3);
      const cols = t.cols + 1 + rng.int(5);
      const h = envelopeHeaders({ deployment: dep, to: t.index, kind: kindOf(t.port), seq: rng.int(1000), epoch: 0, from: 'fuzzer', tensor: { shape: [rows, cols], data: new Float32Array(0) } });
      return { h, data: new Uint8Array(rows * cols * 4) };
    },
  },
  { name: 'no headers', make: (_t, _dep, rng) => ({ h: undefined, data: randomBytes(rng, rng.int(64)) }) },
  { name: 'garbage headers', make: (_t, _dep, rng) => {
      const h = headers();
      h.set('X-Junk', String(rng.next()));
      return { h, data: randomBytes(rng, 1 + rng.int(64)) };
    } },
  {
    name: 'payload on end',
    make: (t, dep, rng) => {
      const h = envelopeHeaders({ deployment: dep, to: t.index, kind: 'end', seq: 1000 + rng.int(1000), epoch: 0, from: 'fuzzer' });
      return { h, data: randomBytes(rng, 4 + rng.int(64)) };
    },
  },
];

function pick<T>(rng: Rng, xs: T[]): T {
  return xs[rng.int(xs.length)];
}
function randomBytes(rng: Rng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = rng.int(256);
  return b;
}
function kindOf(port: Port) {
  return port === 'fwd' ? 'fwd' : port === 'bwd' ? 'bwd' : 'target';
}
/** A valid envelope for the target (then broken by `mutate`). */
function valid(t: Target, dep: string, rng: Rng, mutate?: (h: ReturnType<typeof headers>) => void) {
  const rows = 1 + rng.int(3);
  const data = new Float32Array(rows * t.cols);
  for (let i = 0; i < data.length; i++) data[i] = rng.normal();
  const h = envelopeHeaders({ deployment: dep, to: t.index, kind: kindOf(t.port), seq: rng.int(1000), epoch: 0, from: 'fuzzer', tensor: { shape: [rows, t.cols], data } });
  mutate?.(h);
  return { h, data: new Uint8Array(data.buffer) };
}

export const malformedMessages: FaultKind = {
  kind: 'malformed-messages',
  description: 'inject count (default 10,000) random and mutated envelopes into the mailboxes',
  async inject(ctx, fault) {
    const n = fault.count ?? 10_000;
    const targets: Target[] = ctx.model.vnodes.flatMap((v) =>
      v.def.role === 'loss'
        ? [{ index: v.index, port: 'fwd' as Port, cols: v.inFeatures }, { index: v.index, port: 'target' as Port, cols: v.outFeatures }]
        : [{ index: v.index, port: 'fwd' as Port, cols: v.inFeatures }, { index: v.index, port: 'bwd' as Port, cols: v.outFeatures }],
    );
    const js = jetstream(ctx.nc);
    const at = Date.now();
    const byKind = new Map<string, number>();
    const BATCH = 250;
    for (let sent = 0; sent < n; sent += BATCH) {
      await Promise.all(
        Array.from({ length: Math.min(BATCH, n - sent) }, () => {
          const t = pick(ctx.rng, targets);
          const m = pick(ctx.rng, MUTATIONS);
          byKind.set(m.name, (byKind.get(m.name) ?? 0) + 1);
          const { h, data } = m.make(t, ctx.deployment, ctx.rng);
          return js.publish(Subject.mailbox(ctx.deployment, t.index, t.port), data, h ? { headers: h } : undefined);
        }),
      );
      if ((sent / BATCH) % 8 === 0) ctx.log(`malformed-messages: ${Math.min(n, sent + BATCH)}/${n} injected`);
    }
    return {
      kind: this.kind,
      target: `${targets.length} mailbox ports`,
      atStep: fault.atStep,
      at,
      healedAt: Date.now(),
      expectDead: [],
      injectedMessages: n,
      detail: `${n} bad envelopes: ${[...byKind].map(([k, c]) => `${k} ${c}`).join(', ')}`,
    };
  },
};
