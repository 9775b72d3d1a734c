/**
 * The language model: names-gpt trained by DCNR in one process, and the same
 * architecture in PyTorch (bench/torch_baseline.py `gpt`) on the very batches DCNR fed
 * (written out from `textTrainingBatch`), with the same init schemes, optimizer and
 * steps; both scored on the same held-out windows, beside the bigram baseline of the
 * same split. Issue #14's bar: DCNR's evalLoss within 3% of PyTorch's and at least
 * 0.3 nats below the bigram's.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bigramEvalLoss, loadNames, textEvalBatches, textTrainingBatch } from '../runtime/data/text.js';
import { BUILTIN_MODELS, contextOf } from '../runtime/model.js';
import { runDcnr } from './process.js';
import { sig } from './stats.js';
import { runTorch, torchInfo } from './torch.js';
import type { Benchmark } from './types.js';

export interface LmBench {
  model: 'names-gpt';
  steps: number;
  batch: number;
  dcnr: { evalLoss: number; finalLoss: number; samplesPerSec: number; paramsHash: string };
  torch: { evalLoss: number; finalLoss: number; samplesPerSec: number; params: number } | null;
  bigramEvalLoss: number;
  unigramEvalLoss: number;
}

const f32 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

export const lmBenchmark: Benchmark<LmBench> = {
  name: 'lm',
  description: 'names-gpt (one process) vs the same transformer in PyTorch on the same batches: evalLoss, samples/s, and the bigram baseline',
  async run(ctx) {
    // Measured here: ≈10 steps/s at batch 32 in one process, so 2000 steps ≈ 3.5 min.
    const steps = ctx.quick ? 300 : 2000;
    const batch = 32;
    const seed = 1;
    const T = contextOf(BUILTIN_MODELS['names-gpt']);
    const data = loadNames();
    const baseline = bigramEvalLoss(data, T);
    ctx.progress(`lm: names-gpt, ${steps} steps × batch ${batch}, one process …`);
    const run = await runDcnr<{ evalLoss: number; finalLoss: number; samplesPerSec: number; paramsHash: string }>([
      'train', '--model', 'names-gpt', '--steps', String(steps), '--batch', String(batch), '--seed', String(seed), '--pnodes', '0', '--store', join(ctx.workDir, 'names-gpt'),
    ]);
    ctx.progress(`lm: DCNR evalLoss ${run.evalLoss.toFixed(4)}, ${sig(run.samplesPerSec)} samples/s; bigram ${baseline.bigram.toFixed(4)}`);
    let torch: LmBench['torch'] = null;
    if (torchInfo()) {
      const x = new Float32Array(steps * batch * T);
      const t = new Float32Array(steps * batch * T);
      for (let s = 0; s < steps; s++) {
        const b = textTrainingBatch(data, seed, s, batch, T);
        x.set(b.x, s * batch * T);
        t.set(b.t, s * batch * T);
      }
      const held = textEvalBatches(data, T);
      const files = ['x', 't', 'ex', 'et'].map((n) => join(ctx.workDir, `names-${n}.f32`));
      [x, t, held.x, held.t].forEach((a, i) => writeFileSync(files[i], f32(a)));
      ctx.progress(`lm: PyTorch, the same ${steps} batches …`);
      const r = runTorch<{ evalLoss: number; finalLoss: number; sps: number; params: number }>(['gpt', ...files, steps, batch, T, data.vocab.length, seed], 1_800_000);
      torch = { evalLoss: r.evalLoss, finalLoss: r.finalLoss, samplesPerSec: sig(r.sps), params: r.params };
      ctx.progress(`lm: PyTorch evalLoss ${r.evalLoss.toFixed(4)}, ${sig(r.sps)} samples/s`);
    }
    return {
      model: 'names-gpt',
      steps,
      batch,
      dcnr: { evalLoss: run.evalLoss, finalLoss: run.finalLoss, samplesPerSec: sig(run.samplesPerSec), paramsHash: run.paramsHash },
      torch,
      bigramEvalLoss: baseline.bigram,
      unigramEvalLoss: baseline.unigram,
    };
  },
};
