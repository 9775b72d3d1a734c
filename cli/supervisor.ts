/** `dcnr supervisor --nats URL`: membership, failure detection, placement, migration. */
import { startSupervisor } from '../supervisor/supervisor.js';
import { createPlacement } from '../supervisor/placement/index.js';
import { fail } from './output.js';
import { connectNats, logLine, onShutdown } from './process.js';

export async function supervisorCommand(opts: { nats: string; detectMs: number; placement: string }): Promise<void> {
  let placement;
  try {
    placement = createPlacement(opts.placement);
  } catch (err) {
    fail((err as Error).message);
  }
  const nc = await connectNats(opts.nats, 'dcnr-supervisor');
  const supervisor = await startSupervisor({ nc, detectMs: opts.detectMs, placement, log: logLine('supervisor') });
  onShutdown(async () => {
    await supervisor.stop();
    await nc.close();
  });
}
