// Scratch experiment (not committed): flush NATS writes once per event-loop turn instead of per microtask.
import { ProtocolHandler } from '@nats-io/nats-core/internal';
const proto = (ProtocolHandler as unknown as { prototype: Record<string, unknown> }).prototype;
proto.sendCommand = function (this: any, cmd: string | Uint8Array, ...payloads: Uint8Array[]) {
  const len = this.outbound.length();
  const buf = typeof cmd === 'string' ? new TextEncoder().encode(cmd) : cmd;
  this.outbound.fill(buf, ...payloads);
  if (len === 0) setImmediate(() => this.flushPending());
  else if (this.outbound.size() >= this.pendingLimit) this.flushPending();
};
console.error('coalescing patch on');
