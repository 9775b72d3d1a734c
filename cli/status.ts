/** `dcnr status [--nats URL] [--json]`: PNodes, their VNodes, health, epochs. */
import { collectStatus } from '../cluster/status.js';
import { fail, printResult } from './output.js';
import { connectNats } from '../cluster/process.js';

/** `12 ok / 1 bad`: segments of its work re-executed by others (docs/ledger.md); `-` when none was. */
function reputationText(p: { reputation?: { verified: number; failed: number } }): string {
  return p.reputation ? `${p.reputation.verified} ok${p.reputation.failed ? ` / ${p.reputation.failed} bad` : ''}` : '-';
}

/** `0.62 (kernelDrift 0.67)`: the risk and its largest signal; `-` when the supervisor has none. */
function riskText(p: { risk?: number; riskSignals?: Record<string, number> }): string {
  if (p.risk === undefined) return '-';
  const [top] = Object.entries(p.riskSignals ?? {}).sort((a, b) => b[1] - a[1]);
  return top && top[1] > 0 ? `${p.risk.toFixed(2)} (${top[0]} ${top[1].toFixed(2)})` : p.risk.toFixed(2);
}

/** `dataset`, `0, 3` or `rounds (every replica)` (a federated aggregator); `?` when the deployment record is not at hand. */
function inputsText(inputs: number[] | null | undefined): string {
  if (inputs === undefined) return '?';
  if (inputs === null) return 'rounds (every replica)';
  return inputs.map((i) => (i < 0 ? 'dataset' : String(i))).join(', ');
}

export async function statusCommand(opts: { nats: string; json: boolean }): Promise<void> {
  const nc = await connectNats(opts.nats, 'dcnr-status').catch((err) => fail(err.message));
  try {
    const s = await collectStatus(nc);
    printResult(s as unknown as Record<string, unknown>, opts.json, () => {
      const lines = [
        s.supervisor ? `supervisor ${s.supervisor.name ? `${s.supervisor.name} (leader, term ${s.supervisor.term}), ` : ''}pid ${s.supervisor.pid} (view ${s.supervisor.viewAgeMs} ms old)` : 'supervisor: none seen (no view in KV)',
        '',
        'PNODE        PID      ALIVE  KERNELS                     GFLOP/S  RISK                    AUDITED     VNODES',
        ...s.pnodes.map(
          (p) =>
            `${p.id.padEnd(12)} ${String(p.pid).padEnd(8)} ${(p.alive ? 'yes' : 'DEAD').padEnd(6)} ${(p.kernelMode + (p.quarantined ? ' (QUARANTINED)' : p.draining ? ' (draining)' : '')).padEnd(27)} ${String(p.gflops).padEnd(8)} ${riskText(p).padEnd(23)} ${reputationText(p).padEnd(11)} ${p.vnodes.join(' ')}`,
        ),
        '',
        'VNODE                PNODE        EPOCH  TYPE                     INPUTS',
        ...s.vnodes.map((v) => `${v.id.padEnd(20)} ${v.pnode.padEnd(12)} ${String(v.epoch).padEnd(6)} ${(v.type ?? '?').padEnd(24)} ${inputsText(v.inputs)}`),
      ];
      return lines.join('\n');
    });
  } finally {
    await nc.close();
  }
}
