/** `dcnr status [--nats URL] [--json]`: PNodes, their VNodes, health, epochs. */
import { collectStatus } from '../cluster/status.js';
import { fail, printResult } from './output.js';
import { connectNats } from '../cluster/process.js';

export async function statusCommand(opts: { nats: string; json: boolean }): Promise<void> {
  const nc = await connectNats(opts.nats, 'dcnr-status').catch((err) => fail(err.message));
  try {
    const s = await collectStatus(nc);
    printResult(s as unknown as Record<string, unknown>, opts.json, () => {
      const lines = [
        s.supervisor ? `supervisor ${s.supervisor.name ? `${s.supervisor.name} (leader, term ${s.supervisor.term}), ` : ''}pid ${s.supervisor.pid} (view ${s.supervisor.viewAgeMs} ms old)` : 'supervisor: none seen (no view in KV)',
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
