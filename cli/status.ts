/** `dcnr status [--nats URL] [--json]`: PNodes, their VNodes, health, epochs. */
import { openBuckets, type OwnershipRecord } from '../runtime/cluster-state.js';
import { readView } from '../cluster/local-cluster.js';
import { fail, printResult } from './output.js';
import { connectNats } from '../cluster/process.js';

export interface StatusReport {
  supervisor: { pid: number; viewAgeMs: number } | null;
  pnodes: Array<{ id: string; pid: number; alive: boolean; draining: boolean; kernelMode: string; gflops: number; vnodes: string[]; fencedWrites: number }>;
  vnodes: Array<{ id: string; pnode: string; epoch: number }>;
}

/** The status object (also served by the dashboard as /api/status). */
export async function collectStatus(nc: Parameters<typeof readView>[0]): Promise<StatusReport> {
  const view = await readView(nc);
  const { owners } = await openBuckets(nc);
  const vnodes: StatusReport['vnodes'] = [];
  for await (const key of await owners.keys()) {
    const e = await owners.get(key);
    if (e && e.operation === 'PUT' && e.length > 0) {
      const r = e.json<OwnershipRecord>();
      vnodes.push({ id: key, pnode: r.pnode, epoch: r.epoch });
    }
  }
  vnodes.sort((a, b) => a.id.localeCompare(b.id, undefined, { numeric: true }));
  return {
    supervisor: view ? { pid: view.supervisorPid, viewAgeMs: Date.now() - view.at } : null,
    pnodes: (view?.pnodes ?? []).map((p) => ({
      id: p.id,
      pid: p.pid,
      alive: p.alive && Date.now() - view!.at < 5000,
      draining: p.draining,
      kernelMode: p.capacity.kernelMode,
      gflops: p.capacity.gflops,
      vnodes: p.vnodes,
      fencedWrites: p.counters.fencedWrites,
    })),
    vnodes,
  };
}

export async function statusCommand(opts: { nats: string; json: boolean }): Promise<void> {
  const nc = await connectNats(opts.nats, 'dcnr-status').catch((err) => fail(err.message));
  try {
    const s = await collectStatus(nc);
    printResult(s as unknown as Record<string, unknown>, opts.json, () => {
      const lines = [
        s.supervisor ? `supervisor pid ${s.supervisor.pid} (view ${s.supervisor.viewAgeMs} ms old)` : 'supervisor: none seen (no view in KV)',
        '',
        'PNODE        PID      ALIVE  KERNELS                     VNODES',
        ...s.pnodes.map((p) => `${p.id.padEnd(12)} ${String(p.pid).padEnd(8)} ${(p.alive ? 'yes' : 'DEAD').padEnd(6)} ${(p.kernelMode + (p.draining ? ' (draining)' : '')).padEnd(27)} ${p.vnodes.join(' ')}`),
        '',
        'VNODE                PNODE        EPOCH',
        ...s.vnodes.map((v) => `${v.id.padEnd(20)} ${v.pnode.padEnd(12)} ${v.epoch}`),
      ];
      return lines.join('\n');
    });
  } finally {
    await nc.close();
  }
}
