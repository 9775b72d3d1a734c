/** Setting a PNode's fault-control knobs (runtime/pnode/fault-control.ts) from a fault kind. */
import type { NatsConnection } from '@nats-io/transport-node';
import { Subject, type FaultControlRequest } from '../../runtime/protocol.js';
import { parseFaultControlReply } from '../../runtime/records.js';

/** Ask `pnode` to apply `req`; throws, naming `kind`, when it answers junk or refuses. */
export async function setFaultControl(nc: NatsConnection, kind: string, pnode: string, req: FaultControlRequest): Promise<void> {
  const m = await nc.request(Subject.faultControl(pnode), JSON.stringify(req), { timeout: 10_000 });
  const r = parseFaultControlReply(m.data);
  if (!r.ok) throw new Error(`${kind}: ${pnode} answered with something else (${r.error})`);
  if (!r.value.ok) throw new Error(`${kind}: ${pnode} refused: ${r.value.error}`);
}
