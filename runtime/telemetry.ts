/**
 * OpenTelemetry for DCNR, in one place: off by default, on when asked.
 *
 * - Tracing: a span per message a VNode handles (`vnode fwd|bwd|target|end`; `vnode
 *   checkpoint` for a checkpoint commit, in the trace of the message that made it due;
 *   `vnode replay` for a re-delivered seq, `vnode reject` for a bad message), parented through the W3C `traceparent` NATS header, and a root span per
 *   training step in the trainer — so one step is one trace across PNodes.
 * - Metrics: messages by kind, compute and persist time, rejected messages, fenced
 *   writes, steps and samples, migrations, detection and resume times.
 *
 * Enabled by `--otel console|otlp` or by the standard env vars (OTEL_TRACES_EXPORTER,
 * OTEL_METRICS_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT …; see `otelPlan`). With none of
 * them, nothing starts and no connection is attempted: every helper below is a cheap
 * no-op. A signal nobody named gets no exporter (the SDK's default would be OTLP).
 */
import { context, metrics, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';
import type { ReadableSpan, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { DataPoint, PushMetricExporter } from '@opentelemetry/sdk-metrics';
// The SDK packages load only when telemetry is turned on (they are many modules).

export type OtelMode = 'console' | 'otlp' | 'none';
export const OTEL_MODES: readonly OtelMode[] = ['console', 'otlp', 'none'];

/** Spans are being recorded (startSpan is a no-op otherwise). */
let tracing = false;
/** The SDK (or a test's tracer) is running. */
let active = false;
let sdk: { shutdown(): Promise<void> } | undefined;
const tracer = () => trace.getTracer('dcnr');
const meter = () => metrics.getMeter('dcnr');

/** Which exporters each signal gets; empty lists mean the signal is off. */
export interface OtelPlan {
  traces: string[];
  metrics: string[];
}

/**
 * Decide the exporters from `--otel` and the standard environment — before any SDK
 * code runs, because the SDK's own default for an unset OTEL_*_EXPORTER is OTLP to
 * localhost:4318, i.e. a connection attempt nobody asked for.
 * - `--otel console`: spans (and metrics, unless OTEL_METRICS_EXPORTER says otherwise)
 *   as lines on stderr; `--otel otlp`: both over OTLP; `--otel none`: nothing.
 * - No flag: OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER as given; an OTLP endpoint
 *   variable alone means OTLP for a signal whose exporter is not named.
 * - OTel logs are never started: logs go through pino (runtime/log.ts).
 */
export function otelPlan(mode: string | undefined, env: NodeJS.ProcessEnv = process.env): OtelPlan {
  const m = (mode ?? '').trim();
  if (m !== '' && !(OTEL_MODES as readonly string[]).includes(m)) throw new Error(`--otel must be one of ${OTEL_MODES.join(', ')}, got ${JSON.stringify(m)}`);
  if (m === 'none') return { traces: [], metrics: [] };
  const list = (v: string | undefined) => (v ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  const set = (v: string | undefined) => list(v).length > 0;
  const endpoint = (signal: 'TRACES' | 'METRICS') => set(env.OTEL_EXPORTER_OTLP_ENDPOINT) || set(env[`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`]);
  const named = (v: string | undefined, signal: 'TRACES' | 'METRICS', fallback: string[]) =>
    (set(v) ? list(v) : m === 'otlp' || (m === '' && endpoint(signal)) ? ['otlp'] : fallback).filter((e) => e !== 'none');
  const traces = m === 'console' ? ['console'] : m === 'otlp' ? ['otlp'] : named(env.OTEL_TRACES_EXPORTER, 'TRACES', []);
  const metrics = named(env.OTEL_METRICS_EXPORTER, 'METRICS', m === 'console' ? ['console'] : []);
  return { traces, metrics };
}

/** Whether the standard OTEL_* environment asks for telemetry. */
export function otelRequestedByEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  const p = otelPlan(undefined, env);
  return p.traces.length + p.metrics.length > 0;
}

/**
 * Start telemetry for this process when `mode` (or the environment) asks for it (see
 * {@link otelPlan}). `console` prints spans and metrics as lines on stderr (stdout is the
 * `--json` contract's); `otlp` exports with the standard OTEL_EXPORTER_OTLP_* settings.
 * Returns a shutdown (flushes; metrics are exported one last time) or undefined when off.
 */
export async function initTelemetry(o: { service: string; mode?: string; attributes?: Attributes }): Promise<(() => Promise<void>) | undefined> {
  const plan = otelPlan(o.mode);
  if (plan.traces.length + plan.metrics.length === 0) return undefined;
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const { W3CTraceContextPropagator } = await import('@opentelemetry/core');
  const { SimpleSpanProcessor } = await import('@opentelemetry/sdk-trace-base');
  const { PeriodicExportingMetricReader } = await import('@opentelemetry/sdk-metrics');
  const { resourceFromAttributes } = await import('@opentelemetry/resources');
  // Console exporters of our own, on stderr; any other exporter the SDK builds from the
  // environment, so that part is handed over as env vars for the construction only.
  const consoleOnly = (names: string[]) => {
    if (names.includes('console') && names.length > 1) process.stderr.write(`dcnr: OpenTelemetry: ${names.join(',')}: with console, only console is used\n`);
    return names.includes('console');
  };
  const saved = { t: process.env.OTEL_TRACES_EXPORTER, m: process.env.OTEL_METRICS_EXPORTER };
  const restore = (k: 'OTEL_TRACES_EXPORTER' | 'OTEL_METRICS_EXPORTER', v: string | undefined) => (v === undefined ? delete process.env[k] : (process.env[k] = v));
  process.env.OTEL_TRACES_EXPORTER = plan.traces.join(',') || 'none';
  process.env.OTEL_METRICS_EXPORTER = plan.metrics.join(',') || 'none';
  let started: InstanceType<typeof NodeSDK>;
  try {
    const interval = Number(process.env.OTEL_METRIC_EXPORT_INTERVAL) || 10_000;
    started = new NodeSDK({
      serviceName: o.service,
      resource: resourceFromAttributes({ 'service.name': o.service, 'process.pid': process.pid, ...o.attributes }),
      autoDetectResources: false,
      textMapPropagator: new W3CTraceContextPropagator(),
      logRecordProcessors: [],
      ...(consoleOnly(plan.traces) ? { spanProcessors: [new SimpleSpanProcessor(stderrSpanExporter())] } : {}),
      ...(consoleOnly(plan.metrics) ? { metricReaders: [new PeriodicExportingMetricReader({ exporter: stderrMetricExporter(), exportIntervalMillis: interval })] } : {}),
    });
    started.start();
  } finally {
    restore('OTEL_TRACES_EXPORTER', saved.t);
    restore('OTEL_METRICS_EXPORTER', saved.m);
  }
  sdk = started;
  tracing = plan.traces.length > 0;
  active = true;
  return async () => {
    await sdk?.shutdown().catch(() => {});
    // Unregister the globals too, so a later init in the same process (tests) takes effect.
    trace.disable();
    metrics.disable();
    propagation.disable();
    context.disable();
    instruments = undefined;
    sdk = undefined;
    tracing = false;
    active = false;
  };
}

/** Spans as one line each on stderr: `otel span <name> trace= span= parent= <ms> {attributes}`. */
function stderrSpanExporter(): SpanExporter {
  const line = (sp: ReadableSpan) =>
    `otel span ${sp.name} trace=${sp.spanContext().traceId} span=${sp.spanContext().spanId} parent=${sp.parentSpanContext?.spanId ?? '-'} ` +
    `${(sp.duration[0] * 1e3 + sp.duration[1] / 1e6).toFixed(2)}ms ${JSON.stringify(sp.attributes)}\n`;
  return {
    export(spans, done) {
      for (const sp of spans) process.stderr.write(line(sp));
      done({ code: 0 });
    },
    shutdown: async () => {},
  };
}

/** Metrics as one line per data point on stderr: `otel metric <name> {attributes} <value>`. */
function stderrMetricExporter(): PushMetricExporter {
  const value = (p: DataPoint<unknown>) => {
    const v = p.value as number | { count: number; sum?: number; min?: number; max?: number };
    if (typeof v === 'number') return String(v);
    const f = (x: number | undefined) => (x === undefined ? '-' : Number(x.toFixed(3)));
    return `count=${v.count} sum=${f(v.sum)} min=${f(v.min)} max=${f(v.max)}`;
  };
  return {
    export(rm, done) {
      for (const sm of rm.scopeMetrics)
        for (const md of sm.metrics)
          for (const p of md.dataPoints as DataPoint<unknown>[]) process.stderr.write(`otel metric ${md.descriptor.name} ${JSON.stringify(p.attributes)} ${value(p)}\n`);
      done({ code: 0 });
    },
    forceFlush: async () => {},
    shutdown: async () => {},
  };
}

/** Whether telemetry was started in this process (so periodic measurements are worth taking). */
export function telemetryEnabled(): boolean {
  return active;
}

/** Register tracing with given span processors (tests: an in-memory exporter). */
export async function registerTracing(processors: SpanProcessor[]): Promise<() => Promise<void>> {
  const { NodeTracerProvider } = await import('@opentelemetry/sdk-trace-node');
  const { W3CTraceContextPropagator } = await import('@opentelemetry/core');
  const provider = new NodeTracerProvider({ spanProcessors: processors });
  provider.register({ propagator: new W3CTraceContextPropagator() });
  tracing = true;
  active = true;
  return async () => {
    await provider.shutdown();
    trace.disable();
    propagation.disable();
    context.disable();
    tracing = false;
    active = false;
  };
}

/** A span in flight, with the `traceparent` its outputs carry. */
export interface MessageSpan {
  traceparent: string | undefined;
  /** A child span (e.g. `persist`); call the returned function to end it. */
  child(name: string): () => void;
  end(error?: unknown): void;
}

const NOOP: MessageSpan = { traceparent: undefined, child: () => () => {}, end: () => {} };

/** Start a span whose parent is the `traceparent` it was caused by (or a new trace). */
export function startSpan(name: string, parent: string | undefined, attrs: Attributes | (() => Attributes), kind: SpanKind = SpanKind.CONSUMER): MessageSpan {
  if (!tracing) return NOOP;
  // A function is called only when tracing is on: the hot path allocates nothing when off.
  const attributes = typeof attrs === 'function' ? attrs() : attrs;
  const parentCtx = parent ? propagation.extract(ROOT_CONTEXT, { traceparent: parent }) : ROOT_CONTEXT;
  const span: Span = tracer().startSpan(name, { kind, attributes }, parentCtx);
  const ctx = trace.setSpan(parentCtx, span);
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return {
    traceparent: carrier.traceparent,
    child(childName) {
      const c = tracer().startSpan(childName, { attributes }, ctx);
      return () => c.end();
    },
    end(error) {
      if (error) span.setStatus({ code: SpanStatusCode.ERROR, message: String((error as Error)?.message ?? error) });
      span.end();
    },
  };
}

function createInstruments() {
  const m = meter();
  return {
    messages: m.createCounter('dcnr.messages', { description: 'messages a VNode handled, by kind' }),
    computeMs: m.createHistogram('dcnr.compute.ms', { description: 'kernel time per message (compute)', unit: 'ms' }),
    persistMs: m.createHistogram('dcnr.persist.ms', { description: 'checkpoint commit time (waiting for the sends it covers, KV blobs, CAS)', unit: 'ms' }),
    rejected: m.createCounter('dcnr.rejected', { description: 'messages rejected by the validator' }),
    fencedWrites: m.createCounter('dcnr.fenced_writes', { description: 'stale state writes refused by compare-and-set' }),
    steps: m.createCounter('dcnr.steps', { description: 'training steps completed (losses received)' }),
    samples: m.createCounter('dcnr.samples', { description: 'training samples completed; its rate is samples/s' }),
    samplesPerSec: m.createObservableGauge('dcnr.samples_per_sec', { description: 'training samples/s since the previous collection, per deployment' }),
    migrations: m.createCounter('dcnr.migrations', { description: 'VNodes moved to another PNode' }),
    detectMs: m.createHistogram('dcnr.detect.ms', { description: 'last heartbeat → PNode declared dead', unit: 'ms' }),
    resumeMs: m.createHistogram('dcnr.resume.ms', { description: 'PNode declared dead → its VNodes running elsewhere', unit: 'ms' }),
    mailboxDepth: m.createObservableGauge('dcnr.mailbox.depth', { description: 'messages waiting in the mailboxes of the VNodes a PNode hosts' }),
  };
}
let instruments: ReturnType<typeof createInstruments> | undefined;

/**
 * The metric instruments. Created on first use, so call `initTelemetry` first
 * (before that, and when telemetry is off, they are the API's no-ops).
 */
export function telemetryMetrics(): ReturnType<typeof createInstruments> {
  return (instruments ??= createInstruments());
}
