/** `dcnr supervisor --nats URL`: membership, failure detection, placement, migration. */
import { startSupervisor } from '../supervisor/supervisor.js';
import { createPlacement } from '../supervisor/placement/index.js';
import { startDashboard, type Dashboard } from '../dashboard/server.js';
import { componentLog } from '../runtime/log.js';
import { initTelemetry } from '../runtime/telemetry.js';
import { parseAdmission, startRegistrar, type Registrar } from '../supervisor/registrar.js';
import { AUTHORITY_ENV, loadAuthority } from '../runtime/security/authority.js';
import { fail } from './output.js';
import { connectNats, onShutdown } from '../cluster/process.js';

export interface SupervisorCliOptions {
  nats: string;
  detectMs: number;
  placement: string;
  dashboardPort?: number;
  dashboardHost: string;
  authority?: string;
  registrarPort?: number;
  registrarHost: string;
  admission: string;
  joinNats?: string;
  name?: string;
  leaseMs: number;
  /** null: never drain for risk. */
  drainRisk: number | null;
  auditShare: number;
}

export async function supervisorCommand(opts: SupervisorCliOptions): Promise<void> {
  if (!(opts.auditShare >= 0 && opts.auditShare <= 1)) fail(`the audit share must be in [0, 1] (--audit-share, or env DCNR_AUDIT_SHARE=${JSON.stringify(process.env.DCNR_AUDIT_SHARE ?? '')})`, 2);
  let placement;
  let authority;
  let admission;
  try {
    placement = createPlacement(opts.placement);
    const authorityDir = opts.authority ?? process.env[AUTHORITY_ENV];
    authority = authorityDir ? loadAuthority(authorityDir) : undefined;
    admission = parseAdmission(opts.admission);
    if (opts.registrarPort !== undefined && !authority) throw new Error(`--registrar-port needs the network authority: --authority DIR (or ${AUTHORITY_ENV})`);
  } catch (err) {
    fail((err as Error).message);
  }
  const stopTelemetry = await initTelemetry({ service: 'dcnr-supervisor', mode: process.env.DCNR_OTEL }).catch((err) => fail(err.message));
  const nc = await connectNats(opts.nats, 'dcnr-supervisor').catch((err) => fail(err.message));
  // The registrar and the dashboard are the leader's (one port each, whoever leads):
  // started when this supervisor takes the lease, closed when it loses it.
  let registrar: Registrar | undefined;
  let dashboard: Dashboard | undefined;
  const log = componentLog('supervisor');
  const onLeadership = async (leading: boolean) => {
    if (!leading) {
      await registrar?.close();
      await dashboard?.close();
      registrar = dashboard = undefined;
      return;
    }
    if (authority && opts.registrarPort !== undefined) {
      try {
        registrar = await startRegistrar({ nc, authority, natsUrl: opts.joinNats ?? opts.nats, systemUrl: opts.nats, port: opts.registrarPort, host: opts.registrarHost, admission, log: (l) => log.line(l) });
      } catch (err) {
        fail((err as Error).message, 1);
      }
    }
    if (opts.dashboardPort !== undefined) {
      try {
        dashboard = await startDashboard({ nc, port: opts.dashboardPort, host: opts.dashboardHost });
        log.line(`dashboard on ${dashboard.url} (listening on ${opts.dashboardHost})`);
      } catch (err) {
        fail((err as Error).message, 1);
      }
    }
  };
  const supervisor = await startSupervisor({ nc, detectMs: opts.detectMs, placement, log, name: opts.name, leaseMs: opts.leaseMs, drainAtRisk: opts.drainRisk, auditShare: opts.auditShare, onLeadership });
  onShutdown(async () => {
    await supervisor.stop();
    await registrar?.close();
    await dashboard?.close();
    await stopTelemetry?.();
    await nc.close();
  });
}
