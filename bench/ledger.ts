/**
 * ledger (issue #16): what keeping a ledger costs, from one run — mnist-mlp, batch 64,
 * one process with the ledger off and on, and 3 PNodes with it off, on without spot
 * re-execution, and on with the supervisor's default 5% re-executed by other PNodes
 * (interleaved, the median of the repetitions): samples/s, and per step the bytes of
 * ledger entries and of evidence (the inputs and anchor states a re-execution needs);
 * then the time `dcnr ledger verify` takes on the stored run at the default sample (5%)
 * and at every update.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { join } from 'node:path';
import { openDeployment } from '../cluster/open-deployment.js';
import { Stream } from '../runtime/protocol.js';
import { DEFAULT_AUDIT_SHARE } from '../runtime/ledger/recorder.js';
import { runDcnr } from './process.js';
import { sig } from './stats.js';
import type { Benchmark } from './types.js';

interface TrainJson {
  samplesPerSec: number;
  paramsHash: string;
  steps: number;
}

interface VerifyJson {
  verified: boolean;
  entries: number;
  recomputed: number;
}

export interface LedgerBench {
  model: 'mnist-mlp';
  steps: number;
  batch: number;
  /** samples/s, one process (`--pnodes 0`) and a private cluster of 3 PNodes. */
  onePnode: { off: number; on: number };
  /** `on`: no spot re-execution; `audited`: the supervisor's default share re-executed by other PNodes while training. */
  threePnodes: { off: number; on: number; audited: number };
  /** Per step, from the one-process run's streams. */
  ledgerBytesPerStep: number;
  evidenceBytesPerStep: number;
  /** The ledger changed nothing (same paramsHash with it off and on). */
  identical: boolean;
  verify: { sampleDefaultMs: number; sampleDefaultRecomputed: number; sampleAllMs: number; entries: number; verified: boolean };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export const ledgerBenchmark: Benchmark<LedgerBench> = {
  name: 'ledger',
  description: 'mnist-mlp with the ledger off vs on (1 process, 3 PNodes): samples/s, ledger and evidence bytes per step, verify time',
  async run({ quick, progress, workDir }) {
    const steps = quick ? 200 : 600;
    const batch = 64;
    const reps = quick ? 1 : 3;
    const hashes = new Set<string>();
    const sps = { one: { off: [] as number[], on: [] as number[] }, three: { off: [] as number[], on: [] as number[], audited: [] as number[] } };
    const runs = [
      { pnodes: 0, ledger: false, audit: 0, put: (x: number) => sps.one.off.push(x), label: 'one process, ledger off' },
      { pnodes: 0, ledger: true, audit: 0, put: (x: number) => sps.one.on.push(x), label: 'one process, ledger on' },
      { pnodes: 3, ledger: false, audit: 0, put: (x: number) => sps.three.off.push(x), label: '3 PNodes, ledger off' },
      { pnodes: 3, ledger: true, audit: 0, put: (x: number) => sps.three.on.push(x), label: '3 PNodes, ledger on' },
      { pnodes: 3, ledger: true, audit: DEFAULT_AUDIT_SHARE, put: (x: number) => sps.three.audited.push(x), label: `3 PNodes, ledger on, ${DEFAULT_AUDIT_SHARE * 100}% re-executed` },
    ];
    let store = '';
    for (let rep = 0; rep < reps; rep++) {
      for (const run of runs) {
        const dir = join(workDir, `ledger-${run.pnodes}-${run.ledger}-${run.audit}-${rep}`);
        const args = ['train', '--model', 'mnist-mlp', '--steps', String(steps), '--batch', String(batch), '--pnodes', String(run.pnodes), '--store', dir, ...(run.ledger ? ['--ledger'] : [])];
        // The private cluster's supervisor reads its audit share from the environment.
        const r = await runDcnr<TrainJson>(args, { DCNR_AUDIT_SHARE: String(run.audit) });
        progress(`ledger: ${run.label}: ${r.samplesPerSec.toFixed(0)} samples/s`);
        run.put(r.samplesPerSec);
        hashes.add(r.paramsHash);
        if (run.pnodes === 0 && run.ledger) store = dir;
      }
    }
    const opened = await openDeployment({ deployment: 'mnist-mlp', store, client: 'dcnr-bench-ledger' });
    let ledgerBytes = 0;
    let evidenceBytes = 0;
    try {
      const jsm = await jetstreamManager(opened.nc);
      ledgerBytes = (await jsm.streams.info(Stream.ledger('mnist-mlp'))).state.bytes;
      evidenceBytes = (await jsm.streams.info(Stream.evidence('mnist-mlp'))).state.bytes;
    } finally {
      await opened.close();
    }
    const timed = async (sample: string) => {
      const t = performance.now();
      const v = await runDcnr<VerifyJson>(['ledger', 'verify', '--deployment', 'mnist-mlp', '--store', store, '--sample', sample]);
      return { ms: Math.round(performance.now() - t), v };
    };
    const some = await timed('0.05');
    const all = await timed('1');
    progress(`ledger: verify ${some.ms} ms at 5% (${some.v.recomputed} re-executed), ${all.ms} ms at 100% (${all.v.recomputed})`);
    return {
      model: 'mnist-mlp',
      steps,
      batch,
      onePnode: { off: sig(median(sps.one.off)), on: sig(median(sps.one.on)) },
      threePnodes: { off: sig(median(sps.three.off)), on: sig(median(sps.three.on)), audited: sig(median(sps.three.audited)) },
      ledgerBytesPerStep: Math.round(ledgerBytes / steps),
      evidenceBytesPerStep: Math.round(evidenceBytes / steps),
      identical: hashes.size === 1,
      verify: { sampleDefaultMs: some.ms, sampleDefaultRecomputed: some.v.recomputed, sampleAllMs: all.ms, entries: all.v.entries, verified: all.v.verified && some.v.verified },
    };
  },
};
