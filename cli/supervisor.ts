/** `dcnr supervisor --nats URL`: membership, failure detection, placement, migration. */
import { startSupervisor } from '../supervisor/supervisor.js';
import { createPlacement } from '../supervisor/placement/index.js';
import { startDashboard, type Dashboard } from '../dashboard/server.js';
import { componentLog } from '../runtime/log.js';
import { initTelemetry } from '../runtime/telemetry.js';
import { fail } from './output.js';
import { connectNats, onShutdown } from '../cluster/process.js';

export async function supervisorCommand(opts: { nats: string; detectMs: number; placement: string; dashboardPort?: number; dashboardHost: string }): Promise<void> {
  let placement;
  try {
    placement = createPlacement(opts.placement);
  } catch (err) {
    fail((err as Error).message);
  }
  const stopTelemetry = await initTelemetry({ service: 'dcnr-supervisor', mode: process.env.DCNR_OTEL }).catch((err) => fail(err.message));
  const nc = await connectNats(opts.nats, 'dcnr-supervisor').catch((err) => fail(err.message));
  const supervisor = await startSupervisor({ nc, detectMs: opts.detectMs, placement, log: componentLog('supervisor') });
  let dashboard: Dashboard | undefined;
  if (opts.dashboardPort !== undefined) {
    try {
      dashboard = await startDashboard({ nc, port: opts.dashboardPort, host: opts.dashboardHost });
      componentLog('supervisor').line(`dashboard on ${dashboard.url} (listening on ${opts.dashboardHost})`);
    } catch (err) {
      fail((err as Error).message, 1);
    }
  }
  onShutdown(async () => {
    await dashboard?.close();
    await supervisor.stop();
    await stopTelemetry?.();
    await nc.close();
  });
}
