/**
 * Tracing across PNodes: three PNodes (each on its own NATS connection, real kernels,
 * a real nats-server, a real supervisor placing two VNodes on each) train; one training
 * step must be ONE trace — the trainer's root span, then a span per message each VNode
 * handled, parented through the `traceparent` NATS header — with spans from all three.
 * Also: with telemetry off (no --otel, no OTEL_* env) nothing is started.
 */
import { createServer, type Server } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { metrics } from '@opentelemetry/api';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import '../actors/index.js';
import { waitForPNodes } from '../cluster/view.js';
import { createPlacement } from '../supervisor/placement/index.js';
import { startSupervisor } from '../supervisor/supervisor.js';
import { cleanup, setup } from '../test/helpers/nats.js';
import { createKernels } from './kernels/index.js';
import { loadModelSpec, resolveModel } from './model.js';
import { startPNode, type PNode } from './pnode/pnode.js';
import { initTelemetry, otelPlan, otelRequestedByEnv, registerTracing, startSpan, telemetryMetrics } from './telemetry.js';
import { train } from '../trainer/train.js';

test('off by default: no OTEL_* env and no --otel mean no SDK and no-op spans', async () => {
  assert.is(otelRequestedByEnv({}), false);
  assert.is(otelRequestedByEnv({ OTEL_TRACES_EXPORTER: 'none' }), false);
  assert.is(otelRequestedByEnv({ OTEL_TRACES_EXPORTER: 'otlp' }), true);
  assert.is(otelRequestedByEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }), true);
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (k.startsWith('OTEL_')) delete process.env[k];
  try {
    assert.is(await initTelemetry({ service: 'x' }), undefined);
    assert.is(await initTelemetry({ service: 'x', mode: 'none' }), undefined);
    assert.is(startSpan('s', undefined, {}).traceparent, undefined);
    await initTelemetry({ service: 'x', mode: 'jaeger' }).then(
      () => assert.unreachable(),
      (err: Error) => assert.match(err.message, /--otel must be one of console, otlp, none/),
    );
  } finally {
    process.env = saved;
  }
});

test('otelPlan: a signal gets an exporter only when someone named one', () => {
  assert.equal(otelPlan(undefined, {}), { traces: [], metrics: [] });
  assert.equal(otelPlan('none', { OTEL_TRACES_EXPORTER: 'otlp' }), { traces: [], metrics: [] });
  assert.equal(otelPlan('console', {}), { traces: ['console'], metrics: ['console'] });
  assert.equal(otelPlan('console', { OTEL_METRICS_EXPORTER: 'otlp' }), { traces: ['console'], metrics: ['otlp'] });
  assert.equal(otelPlan('otlp', {}), { traces: ['otlp'], metrics: ['otlp'] });
  // The SDK would default the unnamed metrics to OTLP on localhost; we do not.
  assert.equal(otelPlan(undefined, { OTEL_TRACES_EXPORTER: 'console' }), { traces: ['console'], metrics: [] });
  assert.equal(otelPlan(undefined, { OTEL_METRICS_EXPORTER: 'otlp' }), { traces: [], metrics: ['otlp'] });
  assert.equal(otelPlan(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }), { traces: ['otlp'], metrics: ['otlp'] });
  assert.equal(otelPlan(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x:4318', OTEL_TRACES_EXPORTER: 'none' }), { traces: [], metrics: ['otlp'] });
  assert.throws(() => otelPlan('jaeger', {}), /--otel must be one of console, otlp, none/);
});

/** Listen on the OTLP default ports (4317 gRPC, 4318 HTTP) and count connections; undefined if they are taken. */
async function watchOtlpPorts(): Promise<{ connections: () => number; close: () => void } | undefined> {
  let n = 0;
  const servers: Server[] = [];
  try {
    for (const port of [4317, 4318]) {
      const s = createServer((sock) => {
        n++;
        sock.destroy();
      });
      servers.push(s);
      await new Promise<void>((ok, ko) => s.once('error', ko).listen(port, '127.0.0.1', ok));
    }
  } catch {
    for (const s of servers) s.close();
    return undefined;
  }
  return { connections: () => n, close: () => servers.forEach((s) => s.close()) };
}

test('--otel console: spans and metrics as lines on stderr, no OTLP connection attempted', async () => {
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (k.startsWith('OTEL_')) delete process.env[k];
  const ports = await watchOtlpPorts();
  if (!ports) console.warn('ports 4317/4318 are taken here: the no-connection half of this test cannot look');
  const lines: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => (lines.push(String(chunk)), true)) as typeof process.stderr.write;
  try {
    const stop = await initTelemetry({ service: 'dcnr-test', mode: 'console' });
    assert.ok(stop, 'console mode starts the SDK');
    const span = startSpan('vnode fwd', undefined, { 'dcnr.seq': 7 });
    assert.match(span.traceparent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    span.end();
    telemetryMetrics().messages.add(3, { 'dcnr.kind': 'fwd' });
    await stop!(); // flushes: metrics are exported once more at shutdown
    // Give a stray exporter time to dial out (it would have at shutdown).
    await new Promise((r) => setTimeout(r, 500));
    process.stderr.write = write;
    assert.ok(lines.some((l) => l.startsWith('otel span vnode fwd ') && l.includes('"dcnr.seq":7')), lines.join(''));
    assert.ok(lines.some((l) => l.startsWith('otel metric dcnr.messages {"dcnr.kind":"fwd"} 3')), lines.join(''));
    if (ports) assert.is(ports.connections(), 0, 'no connection to the OTLP default ports');
    assert.is(startSpan('after', undefined, {}).traceparent, undefined, 'after shutdown spans are no-ops again');
  } finally {
    process.stderr.write = write;
    ports?.close();
    process.env = saved;
  }
});

test('one training step across three PNodes is one trace with spans from each; metrics count the messages', async () => {
  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  metrics.setGlobalMeterProvider(meterProvider);
  const exporter = new InMemorySpanExporter();
  const unregister = await registerTracing([new SimpleSpanProcessor(exporter)]);
  const { ns, nc } = await setup();
  const conns: NatsConnection[] = [];
  const pnodes: PNode[] = [];
  const supervisor = await startSupervisor({ nc, detectMs: 2000, placement: createPlacement('round-robin') });
  try {
    const kernels = await createKernels();
    for (const name of ['pnode-a', 'pnode-b', 'pnode-c']) {
      const c = await connect({ servers: ns.url });
      conns.push(c);
      pnodes.push(await startPNode({ nc: c, name, kernels }));
    }
    await waitForPNodes(nc, 3);
    const model = resolveModel(loadModelSpec('mnist-mlp'));
    await train({ nc, model, steps: 3, batch: 4, seed: 11, kernels });

    const spans = exporter.getFinishedSpans();
    const root = spans.find((s) => s.name === 'train step' && s.attributes['dcnr.seq'] === 0);
    assert.ok(root, 'the trainer made a root span for step 0');
    const traceId = root.spanContext().traceId;
    const step = spans.filter((s) => s.spanContext().traceId === traceId);
    const handled = step.filter((s) => s.name.startsWith('vnode '));
    // 6 VNodes: fwd through all six (the loss takes fwd and target), bwd back through five.
    const byKind = (k: string) => handled.filter((s) => s.name === `vnode ${k}`).length;
    assert.is(byKind('fwd'), 6, `fwd spans: ${byKind('fwd')}`);
    assert.is(byKind('target'), 1);
    assert.is(byKind('bwd'), 5);
    assert.equal(new Set(handled.map((s) => s.attributes['dcnr.pnode'])), new Set(['pnode-a', 'pnode-b', 'pnode-c']));
    // Checkpoints are spans too, in the trace of the message that made them due (here the last: 3 steps < checkpointEvery).
    const last = spans.find((s) => s.name === 'train step' && s.attributes['dcnr.seq'] === 2)!;
    const checkpoints = spans.filter((s) => s.name === 'vnode checkpoint');
    assert.ok(checkpoints.length >= 6, `a checkpoint per VNode at least (${checkpoints.length})`);
    assert.ok(checkpoints.some((s) => s.spanContext().traceId === last.spanContext().traceId), 'the final checkpoints are in the last step\'s trace');
    // Every span but the root hangs off another span of the same trace.
    const ids = new Set(step.map((s) => s.spanContext().spanId));
    for (const s of step) {
      if (s === root) continue;
      assert.ok(s.parentSpanContext && ids.has(s.parentSpanContext.spanId), `${s.name} on ${s.attributes['dcnr.pnode']} has its parent in the trace`);
    }
    // Other steps are other traces.
    const other = spans.find((s) => s.name === 'train step' && s.attributes['dcnr.seq'] === 1)!;
    assert.is.not(other.spanContext().traceId, traceId);

    // Metrics: three steps = 18 fwd, 3 target, 15 bwd messages handled; 3 steps, 12 samples.
    const { resourceMetrics } = await reader.collect();
    const all = resourceMetrics.scopeMetrics.flatMap((sm) => sm.metrics);
    const sumOf = (name: string, kind?: string) =>
      all
        .filter((m) => m.descriptor.name === name)
        .flatMap((m) => m.dataPoints as Array<{ value: number | { count: number }; attributes: Record<string, unknown> }>)
        .filter((d) => kind === undefined || d.attributes['dcnr.kind'] === kind)
        .reduce((n, d) => n + (typeof d.value === 'number' ? d.value : d.value.count), 0);
    assert.is(sumOf('dcnr.messages', 'fwd'), 18);
    assert.is(sumOf('dcnr.messages', 'target'), 3);
    assert.is(sumOf('dcnr.messages', 'bwd'), 15);
    assert.is(sumOf('dcnr.steps'), 3);
    assert.is(sumOf('dcnr.samples'), 12);
    assert.ok(sumOf('dcnr.persist.ms') >= 6, 'a persist time per checkpoint, one per VNode at least');
  } finally {
    for (const p of pnodes) await p.stop();
    for (const c of conns) await c.close();
    await supervisor.stop();
    await cleanup(ns, nc);
    await unregister();
    await meterProvider.shutdown();
  }
});

test.run();
