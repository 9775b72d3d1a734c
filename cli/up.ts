/**
 * `dcnr up [--pnodes N] [--nats URL]`: a local cluster as processes — nats-server
 * (unless --nats), two supervisors (one leads, one stands by) and N PNodes — every log line prefixed with its
 * process; Ctrl-C stops them all.
 */
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { startDashboard, type Dashboard } from '../dashboard/server.js';
import { startLocalCluster } from '../cluster/local-cluster.js';
import { waitForPNodes } from '../cluster/view.js';
import { fail } from './output.js';
import { connectNats, onShutdown } from '../cluster/process.js';

export async function upCommand(opts: { pnodes: number; nats?: string; store: string; keepStore: boolean; dashboardPort: number; dashboardHost?: string; dashboard: boolean }): Promise<void> {
  const storeDir = resolve(opts.store);
  if (!opts.nats && !opts.keepStore) rmSync(storeDir, { recursive: true, force: true });
  let cluster;
  try {
    // Two supervisors: one leads, one stands by (supervisor/leadership.ts).
    cluster = await startLocalCluster({ pnodes: opts.pnodes, nats: opts.nats, storeDir, logs: 'prefix', supervisors: 2 });
  } catch (err) {
    fail((err as Error).message, 1);
  }
  const nc = await connectNats(cluster.url, 'dcnr-up').catch((err) => fail(err.message));
  let dashboard: Dashboard | undefined;
  if (opts.dashboard) {
    try {
      dashboard = await startDashboard({ nc, port: opts.dashboardPort, host: opts.dashboardHost });
      process.stderr.write(`dcnr up: dashboard on ${dashboard.url}\n`);
    } catch (err) {
      process.stderr.write(`dcnr up: ${(err as Error).message}; going on without a dashboard\n`);
    }
  }
  onShutdown(async () => {
    process.stderr.write('dcnr up: stopping the cluster …\n');
    await dashboard?.close();
    await nc.close();
    await cluster.stop();
  });
  for (const [name, child] of cluster.procs) {
    child.once('exit', (code, signal) => process.stderr.write(`dcnr up: ${name} exited (${signal ?? code})\n`));
  }
  try {
    await waitForPNodes(nc, opts.pnodes, 60_000);
  } catch (err) {
    process.stderr.write(`dcnr up: ${(err as Error).message}\n`);
  }
  process.stdout.write(
    [
      '',
      `DCNR cluster up: supervisor + ${opts.pnodes} PNodes on ${cluster.url}${cluster.server ? ` (nats-server pid ${cluster.server.pid}, store ${storeDir})` : ''}`,
      ...(dashboard ? ['', `Dashboard: ${dashboard.url}`] : []),
      '',
      ...(cluster.creds
        ? [
            `Auth is on: the credentials are in ${cluster.authority!.dir} (trainer.creds, observer.creds, admin.creds; docs/threat-model.md).`,
            '',
            'In another terminal:',
            `  npx dcnr --creds ${cluster.creds.trainer} train --nats ${cluster.url} --model mnist-mlp --steps 600`,
            `  npx dcnr --creds ${cluster.creds.observer} status --nats ${cluster.url}`,
            `  npx dcnr --creds ${cluster.creds.admin} drain pnode-1 --nats ${cluster.url}`,
            '',
            `A PNode joins from any shell (it is admitted by the registrar and gets its own credentials):`,
            `  npx dcnr pnode --join ${cluster.registrarUrl} --name pnode-joined`,
            `  npx dcnr --creds ${cluster.creds.admin} revoke pnode-joined --nats ${cluster.url}`,
          ]
        : ['In another terminal:', `  npx dcnr train --nats ${cluster.url} --model mnist-mlp --steps 600`, `  npx dcnr status --nats ${cluster.url}`, `  npx dcnr drain pnode-1 --nats ${cluster.url}`]),
      '',
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
}
