/** `dcnr pnode --nats URL [--name ID]`: one worker process hosting VNodes. */
import '../actors/index.js';
import { createKernels } from '../runtime/kernels/index.js';
import { startPNode } from '../runtime/pnode/pnode.js';
import { componentLog } from '../runtime/log.js';
import { initTelemetry } from '../runtime/telemetry.js';
import { fail } from './output.js';
import { connectNats, onShutdown } from '../cluster/process.js';

export async function pnodeCommand(opts: { nats: string; name?: string; heartbeatMs: number; passivateMs: number; maxVnodes: number }): Promise<void> {
  const name = opts.name ?? `pnode-${process.pid}`;
  const stopTelemetry = await initTelemetry({ service: 'dcnr-pnode', mode: process.env.DCNR_OTEL, attributes: { 'dcnr.pnode': name } }).catch((err) => fail(err.message));
  const nc = await connectNats(opts.nats, `dcnr-${name}`).catch((err) => fail(err.message));
  const kernels = await createKernels();
  let pnode;
  try {
    pnode = await startPNode({ nc, name, kernels, heartbeatMs: opts.heartbeatMs, passivateAfterMs: opts.passivateMs, maxVNodes: opts.maxVnodes, log: componentLog(name) });
  } catch (err) {
    fail((err as Error).message, 1);
  }
  onShutdown(async () => {
    await pnode.stop();
    await nc.close();
    await stopTelemetry?.();
  });
}
