/**
 * OpenTelemetry for DCNR, in one place: off by default, on when asked.
 *
 * - Tracing: a span per message a VNode handles (`vnode fwd|bwd|target|end`, child
 *   spans `persist`; `vnode replay` for a re-delivered seq, `vnode reject` for a bad
 *   message), parented through the W3C `traceparent` NATS header, and a root span per
 *   training step in the trainer — so one step is one trace across PNodes.
 * - Metrics: messages by kind, compute and persist time, rejected messages, fenced
 *   writes, steps and samples, migrations, detection and resume times.
 *
 * Enabled by `--otel console|otlp` or by the standard env vars (OTEL_TRACES_EXPORTER,
 * OTEL_METRICS_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT …). With none of them, nothing
 * starts and no connection is attempted: every helper below is a cheap no-op.
 */
import { context, metrics, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';
import type { ReadableSpan, SpanProcessor } from '@opentelemetry/sdk-trace-base';
// The SDK packages load only when telemetry is turned on (they are many modules).

export type OtelMode = 'console' | 'otlp' | 'none';
export const OTEL_MODES: readonly OtelMode[] = ['console', 'otlp', 'none'];

let tracing = false;
let sdk: { shutdown(): Promise<void> } | undefined;
const tracer = () => trace.getTracer('dcnr');
const meter = () => metrics.getMeter('dcnr');

/** Whether the standard OTEL_* environment asks for telemetry. */
export function otelRequestedByEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  const on = (v: string | undefined) => v !== undefined && v.trim() !== '' && v.trim() !== 'none';
  return on(env.OTEL_TRACES_EXPORTER) || on(env.OTEL_METRICS_EXPORTER) || on(env.OTEL_EXPORTER_OTLP_ENDPOINT) || on(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/**
 * Start telemetry for this process when `mode` (or the environment) asks for it.
 * `console` prints spans and metrics to stderr (a quick look); `otlp` exports with the
 * standard OTEL_EXPORTER_OTLP_* settings. Returns a shutdown (flushes) or undefined.
 */
export async function initTelemetry(o: { service: string; mode?: string; attributes?: Attributes }): Promise<(() => Promise<void>) | undefined> {
  const mode = (o.mode ?? '').trim();
  if (mode !== '' && !(OTEL_MODES as readonly string[]).includes(mode)) throw new Error(`--otel must be one of ${OTEL_MODES.join(', ')}, got ${JSON.stringify(mode)}`);
  if (mode === 'none' || (mode === '' && !otelRequestedByEnv())) return undefined;
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const { W3CTraceContextPropagator } = await import('@opentelemetry/core');
  const { SimpleSpanProcessor } = await import('@opentelemetry/sdk-trace-base');
  const { resourceFromAttributes } = await import('@opentelemetry/resources');
  let started: InstanceType<typeof NodeSDK>;
  if (mode === 'console') {
    // Spans as one line each on stderr (the console exporter writes to stdout, and a
    // `--json` contract owns stdout's last line). Metrics need an exporter that is not
    // the console (OTEL_METRICS_EXPORTER=otlp …): the console one writes to stdout.
    const line = (sp: ReadableSpan) =>
      `otel span ${sp.name} trace=${sp.spanContext().traceId} span=${sp.spanContext().spanId} parent=${sp.parentSpanContext?.spanId ?? '-'} ` +
      `${(sp.duration[0] * 1e3 + sp.duration[1] / 1e6).toFixed(2)}ms ${JSON.stringify(sp.attributes)}\n`;
    started = new NodeSDK({
      serviceName: o.service,
      resource: resourceFromAttributes({ 'service.name': o.service, ...o.attributes }),
      spanProcessors: [
        new SimpleSpanProcessor({
          export: (spans, done) => {
            for (const sp of spans) process.stderr.write(line(sp));
            done({ code: 0 });
          },
          shutdown: async () => {},
        }),
      ],
      textMapPropagator: new W3CTraceContextPropagator(),
      autoDetectResources: false,
    });
  } else {
    // `otlp`, or whatever OTEL_* says: the SDK reads the standard variables itself.
    if (mode === 'otlp') process.env.OTEL_TRACES_EXPORTER ??= 'otlp';
    started = new NodeSDK({ serviceName: o.service, resource: resourceFromAttributes({ 'service.name': o.service, ...o.attributes }), textMapPropagator: new W3CTraceContextPropagator(), autoDetectResources: false });
  }
  started.start();
  sdk = started;
  tracing = true;
  return async () => {
    await sdk?.shutdown().catch(() => {});
    sdk = undefined;
    tracing = false;
  };
}

/** Whether telemetry was started in this process (so periodic measurements are worth taking). */
export function telemetryEnabled(): boolean {
  return tracing;
}

/** Register tracing with given span processors (tests: an in-memory exporter). */
export async function registerTracing(processors: SpanProcessor[]): Promise<() => Promise<void>> {
  const { NodeTracerProvider } = await import('@opentelemetry/sdk-trace-node');
  const { W3CTraceContextPropagator } = await import('@opentelemetry/core');
  const provider = new NodeTracerProvider({ spanProcessors: processors });
  provider.register({ propagator: new W3CTraceContextPropagator() });
  tracing = true;
  return async () => {
    await provider.shutdown();
    trace.disable();
    propagation.disable();
    context.disable();
    tracing = false;
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
export function startSpan(name: string, parent: string | undefined, attributes: Attributes, kind: SpanKind = SpanKind.CONSUMER): MessageSpan {
  if (!tracing) return NOOP;
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
    persistMs: m.createHistogram('dcnr.persist.ms', { description: 'state commit time per message (KV blobs + CAS)', unit: 'ms' }),
    rejected: m.createCounter('dcnr.rejected', { description: 'messages rejected by the validator' }),
    fencedWrites: m.createCounter('dcnr.fenced_writes', { description: 'stale state writes refused by compare-and-set' }),
    steps: m.createCounter('dcnr.steps', { description: 'training steps completed (losses received)' }),
    samples: m.createCounter('dcnr.samples', { description: 'training samples completed; its rate is samples/s' }),
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
