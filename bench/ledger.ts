/**
 * ledger (issue #16): what keeping a ledger costs, from one run — mnist-mlp, batch 64,
 * one process and 3 PNodes, each with the ledger off and on (interleaved, the median of
 * the repetitions): samples/s, and per step the bytes of ledger entries and of evidence
 * (the inputs and anchor states a re-execution needs); then the time `dcnr ledger
 * verify` takes on the stored run at the default sample (5%) and at every update.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { join } from 'node:path';
import { openDeployment } from '../cluster/open-deployment.js';
import { Stream } from '../runtime/protocol.js';
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
  threePnodes: { off: number; on: number };
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
    const sps = { one: { off: [] as number[], on: [] as number[] }, three: { off: [] as number[], on: [] as number[] } };
    let store = '';
    for (let rep = 0; rep < reps; rep++) {
      for (const pnodes of [0, 3] as const) {
        for (const ledger of [false, true]) {
          const dir = join(workDir, `ledger-${pnodes}-${ledger}-${rep}`);
          const r = await runDcnr<TrainJson>(['train', '--model', 'mnist-mlp', '--steps', String(steps), '--batch', String(batch), '--pnodes', String(pnodes), '--store', dir, ...(ledger ? ['--ledger'] : [])]);
          progress(`ledger: ${pnodes ? `${pnodes} PNodes` : 'one process'}, ledger ${ledger ? 'on ' : 'off'}: ${r.samplesPerSec.toFixed(0)} samples/s`);
          (pnodes ? sps.three : sps.one)[ledger ? 'on' : 'off'].push(r.samplesPerSec);
          hashes.add(r.paramsHash);
          if (pnodes === 0 && ledger) store = dir;
        }
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
      threePnodes: { off: sig(median(sps.three.off)), on: sig(median(sps.three.on)) },
      ledgerBytesPerStep: Math.round(ledgerBytes / steps),
      evidenceBytesPerStep: Math.round(evidenceBytes / steps),
      identical: hashes.size === 1,
      verify: { sampleDefaultMs: some.ms, sampleDefaultRecomputed: some.v.recomputed, sampleAllMs: all.ms, entries: all.v.entries, verified: all.v.verified && some.v.verified },
    };
  },
};
