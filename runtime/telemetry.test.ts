/**
 * Tracing across PNodes: three PNodes (each on its own NATS connection, real kernels,
 * a real nats-server, a real supervisor placing two VNodes on each) train; one training
 * step must be ONE trace — the trainer's root span, then a span per message each VNode
 * handled, parented through the `traceparent` NATS header — with spans from all three.
 * Also: with telemetry off (no --otel, no OTEL_* env) nothing is started.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { metrics } from '@opentelemetry/api';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import '../actors/index.js';
import { waitForPNodes } from '../cli/cluster.js';
import { createPlacement } from '../supervisor/placement/index.js';
import { startSupervisor } from '../supervisor/supervisor.js';
import { cleanup, setup } from '../test/helpers/nats.js';
import { createKernels } from './kernels/index.js';
import { loadModelSpec, resolveModel } from './model.js';
import { startPNode, type PNode } from './pnode.js';
import { initTelemetry, otelRequestedByEnv, registerTracing, startSpan } from './telemetry.js';
import { train } from './trainer.js';

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
    assert.ok(step.some((s) => s.name === 'persist'), 'state commits are spans too');
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
    assert.ok(sumOf('dcnr.persist.ms') >= 36, 'a persist time per message');
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
