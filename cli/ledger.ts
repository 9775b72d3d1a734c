/**
 * `dcnr ledger verify --deployment NAME [--nats URL | --store DIR] [--sample P] [--json]`:
 * check a deployment's ledger against its committed state and re-execute a sample of its
 * updates (runtime/ledger/verify.ts); exit 0 iff `verified`.
 * `dcnr ledger show --deployment NAME [...]`: what each PNode contributed (updates,
 * compute time, bytes), from the committed chains, without re-executing anything.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import '../actors/index.js';
import { openDeployment, UsageError, type OpenedDeployment } from '../cluster/open-deployment.js';
import { createKernels } from '../runtime/kernels/index.js';
import { verifyLedger, type LedgerReport } from '../runtime/ledger/verify.js';
import { stateAuthOf } from '../runtime/security/verifier.js';
import { fail, printResult } from './output.js';

export interface LedgerCliOptions {
  deployment: string;
  nats?: string;
  store?: string;
  /** Share of updates to re-execute (verify), 0..1. */
  sample?: string;
  json: boolean;
}

export async function ledgerCommand(action: 'verify' | 'show', opts: LedgerCliOptions): Promise<void> {
  let opened: OpenedDeployment | undefined;
  let error: { message: string; code: number } | undefined;
  let exitCode = 0;
  try {
    const sample = action === 'show' ? 0 : opts.sample === undefined ? 0.05 : Number(opts.sample);
    if (!Number.isFinite(sample) || sample < 0 || sample > 1) throw new UsageError(`--sample must be a share between 0 and 1 (1 = every update), got ${JSON.stringify(opts.sample)}`);
    opened = await openDeployment({ ...opts, client: `dcnr-ledger-${action}`, hint: 'train first, with the ledger on: dcnr train --ledger' });
    const { nc, record, deployed: model, store } = opened;
    if (!model.spec.ledger) throw new UsageError(`deployment ${JSON.stringify(opts.deployment)} keeps no ledger (train it with --ledger, or "ledger": true in its spec)`);
    const auth = await stateAuthOf(nc);
    const report = await verifyLedger({
      jsm: await jetstreamManager(nc),
      store,
      model,
      generation: record.generation,
      kernels: await createKernels(),
      sample,
      ownerKey: auth?.ownerKey,
      progress: opts.json ? undefined : (line) => process.stderr.write(`${line}\n`),
    });
    if (action === 'verify') {
      printResult({ ...report }, opts.json, () => human(report));
      if (!report.verified) exitCode = 1;
    } else {
      const { deployment, entries, records, chainOk, signaturesOk, contributions } = report;
      printResult({ deployment, entries, records, chainOk, signaturesOk, contributions }, opts.json, () => contributionsTable(report));
    }
  } catch (err) {
    error = { message: (err as Error).message, code: err instanceof UsageError ? 2 : 1 };
  } finally {
    await opened?.close();
  }
  if (error) fail(error.message, error.code);
  if (exitCode) process.exitCode = exitCode;
}

function contributionsTable(r: LedgerReport): string {
  const rows = Object.entries(r.contributions).sort(([a], [b]) => a.localeCompare(b));
  const lines = [`${r.deployment}: ${r.entries} applied messages in ${r.records} ledger entries${r.chainOk ? '' : ' (the chain is broken: run dcnr ledger verify)'}`, 'pnode            updates   messages   compute ms      input MB'];
  for (const [pnode, c] of rows) lines.push(`${pnode.padEnd(16)} ${String(c.updates).padStart(7)} ${String(c.messages).padStart(10)} ${String(c.computeMs).padStart(12)} ${(c.bytes / 1e6).toFixed(1).padStart(13)}`);
  return lines.join('\n');
}

function human(r: LedgerReport): string {
  const lines = [
    `${r.verified ? 'verified' : 'NOT verified'}: ${r.deployment} (generation ${r.generation})`,
    `entries      ${r.entries} applied messages in ${r.records} records${r.orphans ? ` (+${r.orphans} orphaned: checkpoints that never committed)` : ''}`,
    `chain        ${r.chainOk ? 'ok' : 'BROKEN'}`,
    `signatures   ${r.signed ? (r.signaturesOk ? 'ok' : 'BAD') : 'unsigned (auth off): the hash chain only'}`,
    `recomputed   ${r.recomputed} messages (kernels ${r.kernels.verifier}; recorded with ${r.kernels.recorded.join(', ') || '-'})${r.unverifiable ? `, ${r.unverifiable} whose evidence is gone` : ''}`,
    `mismatches   ${r.mismatches.length}`,
    ...r.mismatches.slice(0, 20).map((m) => `  ${m.vnode} seq ${m.seq}${m.kind ? ` (${m.kind})` : ''} on ${m.pnode}: ${m.reason}`),
  ];
  return `${lines.join('\n')}\n${contributionsTable(r)}`;
}
