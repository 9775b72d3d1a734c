/**
 * The timeout detector: dead once no heartbeat came for `timeoutMs`.
 * With 250 ms heartbeats the default 1000 ms tolerates three lost beats.
 */
import type { FailureDetector } from './types.js';

export interface TimeoutDetectorOptions {
  /** Silence after which a PNode is dead. @default 1000 */
  timeoutMs?: number;
}

export function createTimeoutDetector(opts: TimeoutDetectorOptions = {}): FailureDetector {
  const timeoutMs = opts.timeoutMs ?? 1000;
  const last = new Map<string, number>();
  return {
    heartbeat: (pnode, at) => void last.set(pnode, at),
    isDead: (pnode, now) => now - (last.get(pnode) ?? -Infinity) > timeoutMs,
  };
}
