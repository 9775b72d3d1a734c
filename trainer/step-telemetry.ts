/**
 * The trainer's telemetry: one trace per step (its root span ends when the step's loss
 * comes back), step and sample counters, and a samples/s gauge (the rate since the
 * previous collection). All no-ops while telemetry is off.
 */
import { SpanKind, type ObservableResult } from '@opentelemetry/api';
import type { StepMetric } from '../runtime/protocol.js';
import { startSpan, telemetryMetrics, type MessageSpan } from '../runtime/telemetry.js';

export interface StepTelemetry {
  /** Start step `seq`'s trace; returns the traceparent its messages carry. */
  started(seq: number, batch: number): string | undefined;
  finished(metric: StepMetric): void;
  stop(): void;
}

export function stepTelemetry(deployment: string): StepTelemetry {
  const spans = new Map<number, MessageSpan>();
  const meters = telemetryMetrics();
  const attrs = { 'dcnr.deployment': deployment };
  let samples = 0;
  let rateFrom = { at: performance.now(), samples: 0 };
  const observeRate = (r: ObservableResult) => {
    const now = performance.now();
    if (now > rateFrom.at) r.observe(((samples - rateFrom.samples) * 1000) / (now - rateFrom.at), attrs);
    rateFrom = { at: now, samples };
  };
  meters.samplesPerSec.addCallback(observeRate);
  return {
    started(seq, batch) {
      const span = startSpan('train step', undefined, { ...attrs, 'dcnr.seq': seq, 'dcnr.batch': batch }, SpanKind.PRODUCER);
      if (span.traceparent) spans.set(seq, span);
      return span.traceparent;
    },
    finished(metric) {
      spans.get(metric.seq)?.end();
      spans.delete(metric.seq);
      meters.steps.add(1, attrs);
      meters.samples.add(metric.batch, attrs);
      samples += metric.batch;
    },
    stop: () => meters.samplesPerSec.removeCallback(observeRate),
  };
}
