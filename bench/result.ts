/**
 * The `dcnr bench` result: its schema (checked before it is printed or saved, so a
 * benchmark that forgets a field fails loudly) and its markdown table.
 */
import { z } from 'zod';
import { ratio } from './stats.js';

const num = z.number().finite();
const pct = z.object({ p50Ms: num, maxMs: num });
/** One closed-loop HTTP load of `dcnr serve` at one concurrency (bench/serve.ts). */
const serveLoad = z.object({ requests: z.number().int(), failed: z.number().int(), rps: num, p50Ms: num, p99Ms: num });

export const BenchResult = z.object({
  version: z.literal(1),
  quick: z.boolean(),
  startedAt: z.string(),
  durationMs: num,
  machine: z.object({ cpu: z.string(), cores: z.number().int(), memoryGiB: num, node: z.string(), os: z.string() }),
  kernels: z.array(
    z.object({
      op: z.enum(['matmul', 'dense-fwd-bwd']),
      size: z.number().int(),
      shape: z.tuple([z.number().int(), z.number().int(), z.number().int()]),
      mode: z.string(),
      gflops: num,
      runs: z.number().int().positive(),
    }),
  ),
  kernelsSkipped: z.array(z.object({ mode: z.string(), reason: z.string() })),
  torch: z.object({ version: z.string(), blas: z.string(), threads: z.number().int() }).nullable(),
  hop: z.object({
    natsOneWayUs: num,
    jetstreamOneWayUs: num.optional(),
    vnodeHopUs: num,
    sizes: z.array(
      z.object({
        bytes: z.number().int(),
        n: z.number().int(),
        natsOneWayUs: z.object({ p50: num, p99: num }),
        /** A bare JetStream publish → consume of the same bytes (absent in results saved before it existed). */
        jetstreamOneWayUs: z.object({ p50: num, p99: num }).optional(),
        vnodeHopUs: z.object({ p50: num, p99: num }),
        /** The same hop between VNodes of one process, handed over in memory (absent before local delivery). */
        localHopUs: z.object({ p50: num, p99: num }).optional(),
      }),
    ),
  }),
  train: z.object({
    steps: z.number().int(),
    batch: z.number().int(),
    singleProcessSps: num,
    clusterSps: num,
    torchSps: num.nullable(),
    perBackend: z.array(z.object({ kernelMode: z.string(), sps: num, testAccuracy: num })),
    breakdown: z.object({ kernelMode: z.string(), wallMsPerStep: num, kernelMsPerStep: num, persistMsPerStep: num, publishMsPerStep: num, durabilityWaitMsPerStep: num.optional() }),
    checkpoints: z
      .object({
        defaultEvery: z.number().int(),
        defaultMs: z.number().int(),
        defaultSps: num,
        defaultBytesPerStep: num.nullable(),
        every1Sps: num,
        every1BytesPerStep: num.nullable(),
        identical: z.boolean(),
      })
      .optional(),
    depths: z.array(z.object({ depth: z.number().int(), sps: num, testAccuracy: num })).optional(),
    /**
     * One process with local edges (the default: messages between VNodes in memory only)
     * against `DCNR_LOCAL_DELIVERY=copy` (handed over in memory and published too: the
     * mechanism before), both models; `identical`: the same paramsHash per model.
     */
    localEdges: z
      .object({ sps: num, copySps: num, bytesPerStep: num.nullable(), copyBytesPerStep: num.nullable(), wideSps: num, wideCopySps: num, identical: z.boolean() })
      .optional(),
    /** Auth on (signed messages and state, the default) against --no-auth, same run. */
    auth: z.object({ singleSps: num, singleNoAuthSps: num, clusterSps: num, clusterNoAuthSps: num, identical: z.boolean() }).optional(),
    /** wide-mlp (784-2048-2048-10), batch 256: the compute-bound model. */
    wide: z.object({
      steps: z.number().int(),
      batch: z.number().int(),
      singleProcessSps: num,
      clusterSps: num,
      torchSps: num.nullable(),
      testAccuracy: num,
      identical: z.boolean(),
    }),
  }),
  recovery: z.object({
    n: z.number().int().positive(),
    p50Ms: num,
    maxMs: num,
    detect: pct,
    resume: pct,
    killToDead: pct,
    detectTimeoutMs: num,
    paramsHash: z.string(),
    /** Messages the moved VNodes replayed from their checkpoints, per recovery (absent before checkpoints). */
    replayed: z.object({ p50: num, max: num }).optional(),
  }),
  memory: z.object({
    parameters: z.number().int(),
    pnodes: z.array(z.object({ id: z.string(), vnodes: z.array(z.string()), peakRssMiB: num, idlePeakRssMiB: num.optional() })),
    maxPNodePeakRssMiB: num,
    singleProcessPeakRssMiB: num,
    steps: z.number().int(),
    batch: z.number().int(),
  }),
  /** names-gpt vs PyTorch (bench/lm.ts); absent from results saved before it existed. */
  lm: z
    .object({
      model: z.literal('names-gpt'),
      steps: z.number().int(),
      batch: z.number().int(),
      dcnr: z.object({ evalLoss: num, finalLoss: num, samplesPerSec: num, paramsHash: z.string() }),
      torch: z.object({ evalLoss: num, finalLoss: num, samplesPerSec: num, params: z.number().int() }).nullable(),
      bigramEvalLoss: num,
      unigramEvalLoss: num,
    })
    .optional(),
  /** dcnr serve vs its parts and PyTorch (bench/serve.ts); absent from results saved before it existed. */
  serve: z
    .object({
      model: z.literal('mnist-mlp'),
      vnodes: z.number().int(),
      parts: z.object({ httpUs: num, natsRequestUs: num, hops: z.number().int(), kernelsUs: num, sumMs: num }),
      /** The HTTP load generator that measured c1/c8/c64; absent from results saved before autocannon (a `fetch` loop). */
      loadGenerator: z.string().optional(),
      c1: serveLoad,
      /** Absent from results saved before concurrency 8 was measured. */
      c8: serveLoad.optional(),
      c64: serveLoad,
      p50OverParts: num,
      batchingGain: num,
      torch: z.object({ p50Ms: num, rowsPerSec: num, batch: z.number().int() }).nullable(),
    })
    .optional(),
  /** The ledger's cost (bench/ledger.ts); absent from results saved before it existed. */
  ledger: z
    .object({
      model: z.literal('mnist-mlp'),
      steps: z.number().int(),
      batch: z.number().int(),
      onePnode: z.object({ off: num, on: num }),
      threePnodes: z.object({ off: num, on: num, audited: num }),
      ledgerBytesPerStep: num,
      evidenceBytesPerStep: num,
      identical: z.boolean(),
      verify: z.object({ sampleDefaultMs: num, sampleDefaultRecomputed: z.number().int(), sampleAllMs: num, entries: z.number().int(), verified: z.boolean() }),
    })
    .optional(),
  /** Federated rounds at the same total samples, and the scaling model (bench/federated.ts); absent from results saved before it existed. */
  federated: z
    .object({
      model: z.literal('mnist-mlp'),
      batch: z.number().int(),
      totalSteps: z.number().int(),
      syncEvery: z.number().int(),
      smoke: z.boolean(),
      rows: z.array(
        z.object({
          replicas: z.number().int().positive(),
          compress: z.string().nullable(),
          outer: z.enum(['avg', 'nesterov']).nullable(),
          outerLr: num.nullable(),
          steps: z.number().int(),
          rounds: z.number().int().nullable(),
          samplesPerSec: num,
          bytesSent: num.nullable(),
          bytesPerStep: num.nullable(),
          compressionRatio: num.nullable(),
          testAccuracy: num,
          evalLoss: num,
          replicasIdentical: z.boolean().nullable(),
          durationMs: num,
          paramsHash: z.string(),
        }),
      ),
      scaling: z.object({
        linkBytesPerSec: num,
        roundTripS: num,
        stepS: num,
        bytesPerRoundPerReplica: num,
        dataParallelBytesPerStepPerReplica: num,
        parameters: z.number().int(),
        predictions: z.array(z.object({ machines: z.number().int(), federatedS: num, federatedSpeedup: num, dataParallelS: num, dataParallelSpeedup: num })),
      }),
    })
    .optional(),
  scale: z.object({
    vnodes: z.number().int(),
    pnodes: z.number().int(),
    activation: z.object({ p50Ms: num, p99Ms: num, workP50Ms: num, workP99Ms: num, allActiveMs: num }),
    bytesPerIdleVNode: num,
    bytesPerPassivatedVNode: num,
    passivation: z.object({ afterIdleMs: num, passivated: z.number().int(), allPassivatedMs: num }),
    reactivation: z.object({ woken: z.number().int(), firstWakeMs: num, workP50Ms: num, workP99Ms: num }),
  }),
});
export type BenchResult = z.infer<typeof BenchResult>;

/** Throws a readable error naming every missing or malformed field. */
export function checkBenchResult(value: unknown): BenchResult {
  const r = BenchResult.safeParse(value);
  if (!r.success) throw new Error(`bench result is incomplete: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data;
}

/** The markdown tables `dcnr bench` prints (and README carries). Accepts partial results. */
export function formatTables(r: Partial<BenchResult>): string {
  const out: string[] = [];
  if (r.machine) out.push(`Machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB, Node ${r.machine.node}, ${r.machine.os}${r.quick ? ' (--quick)' : ''}`, '');
  if (r.kernels?.length) {
    const sizes = [...new Set(r.kernels.filter((k) => k.op === 'matmul').map((k) => k.size))].sort((a, b) => a - b);
    const modes = [...new Set(r.kernels.map((k) => k.mode))];
    const blas = modes.find((m) => m.startsWith('blas:') && m.endsWith('-2t')) ?? modes.find((m) => m.startsWith('blas:'));
    const g = (mode: string, op: string, size?: number) => r.kernels!.find((k) => k.mode === mode && k.op === op && (size === undefined || k.size === size))?.gflops;
    out.push('**Kernels** (GFLOP/s, median after warm-up; dense = 64×784→128 forward+backward, 3 matmuls)', '');
    out.push(`| backend | ${sizes.map((s) => `matmul ${s}²`).join(' | ')} | dense fwd+bwd | matmul 512² vs ${blas ?? 'BLAS'} |`);
    out.push(`|---|${sizes.map(() => '---:').join('|')}|---:|---:|`);
    for (const m of modes) {
      out.push(`| ${m} | ${sizes.map((s) => g(m, 'matmul', s) ?? '—').join(' | ')} | ${g(m, 'dense-fwd-bwd') ?? '—'} | ${blas ? ratio(g(m, 'matmul', 512), g(blas, 'matmul', 512)) : '—'} |`);
    }
    for (const s of r.kernelsSkipped ?? []) out.push(`| ${s.mode} | not run: ${s.reason} |`);
    out.push('');
  }
  if (r.hop) {
    out.push(
      '**Hop** (one-way latency, µs)',
      '',
      '| tensor | NATS p50 | NATS p99 | JetStream p50 | VNode hop p50 | VNode hop p99 | hop / NATS (p50) | hop / JetStream (p50) | co-located hop p50 / p99 |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const s of r.hop.sizes) {
      const js = s.jetstreamOneWayUs?.p50;
      const local = s.localHopUs ? `${s.localHopUs.p50} / ${s.localHopUs.p99}` : '—';
      out.push(
        `| ${s.bytes / 1024} KiB | ${s.natsOneWayUs.p50} | ${s.natsOneWayUs.p99} | ${js ?? '—'} | ${s.vnodeHopUs.p50} | ${s.vnodeHopUs.p99} | ${ratio(s.vnodeHopUs.p50, s.natsOneWayUs.p50)} | ${js ? ratio(s.vnodeHopUs.p50, js) : '—'} | ${local} |`,
      );
    }
    out.push('');
  }
  if (r.lm) {
    const l = r.lm;
    const t = l.torch;
    out.push(
      `**Language model** (names-gpt, ${l.steps} steps × batch ${l.batch}, one process; PyTorch: the same architecture on the same batches; eval loss in nats on the held-out windows)`,
      '',
      '| | eval loss | vs PyTorch | below bigram | samples/s | vs PyTorch |',
      '|---|---:|---:|---:|---:|---:|',
      `| DCNR | ${l.dcnr.evalLoss.toFixed(4)} | ${t ? `${(((l.dcnr.evalLoss - t.evalLoss) / t.evalLoss) * 100).toFixed(1)}%` : '—'} | ${(l.bigramEvalLoss - l.dcnr.evalLoss).toFixed(3)} | ${l.dcnr.samplesPerSec} | ${t ? ratio(l.dcnr.samplesPerSec, t.samplesPerSec) : '—'} |`,
      ...(t ? [`| PyTorch | ${t.evalLoss.toFixed(4)} | | ${(l.bigramEvalLoss - t.evalLoss).toFixed(3)} | ${t.samplesPerSec} | |`] : []),
      `| bigram (add-one) | ${l.bigramEvalLoss.toFixed(4)} | | | | |`,
      `| unigram | ${l.unigramEvalLoss.toFixed(4)} | | | | |`,
      '',
    );
  }
  if (r.serve) {
    const v = r.serve;
    const t = v.torch;
    out.push(
      `**Serving** (mnist-mlp through its ${v.vnodes} VNodes: \`dcnr serve\` on a finished store, loaded over HTTP from another process${v.loadGenerator ? ` with ${v.loadGenerator}` : ''}; PyTorch: the same model's forward in one process, no HTTP, no network)`,
      '',
      '| | p50 ms | p99 ms | requests/s | rows/s |',
      '|---|---:|---:|---:|---:|',
      `| DCNR, concurrency 1 | ${v.c1.p50Ms} | ${v.c1.p99Ms} | ${v.c1.rps} | ${v.c1.rps} |`,
      ...(v.c8 ? [`| DCNR, concurrency 8 | ${v.c8.p50Ms} | ${v.c8.p99Ms} | ${v.c8.rps} | ${v.c8.rps} |`] : []),
      `| DCNR, concurrency 64 | ${v.c64.p50Ms} | ${v.c64.p99Ms} | ${v.c64.rps} (${v.batchingGain}× concurrency 1) | ${v.c64.rps} |`,
      ...(t ? [`| PyTorch forward, 1 row | ${t.p50Ms} | | | |`, `| PyTorch forward, ${t.batch} rows | | | | ${t.rowsPerSec} |`] : []),
      '',
      `Parts of a request at concurrency 1 (p50): HTTP round trip to an empty handler ${v.parts.httpUs} µs + ${v.parts.hops} hops × NATS request/reply ${v.parts.natsRequestUs} µs + kernels ${v.parts.kernelsUs} µs = ${v.parts.sumMs} ms; measured p50 / sum = ${v.p50OverParts}.`,
      '',
    );
  }
  if (r.ledger) {
    const l = r.ledger;
    out.push(
      `**Ledger** (mnist-mlp, ${l.steps} steps × batch ${l.batch}, samples/s with the ledger off and on; the same paramsHash: ${l.identical ? 'yes' : 'NO'})`,
      '',
      '| run | ledger off | ledger on | on / off |',
      '|---|---:|---:|---:|',
      `| one process | ${l.onePnode.off} | ${l.onePnode.on} | ${ratio(l.onePnode.on, l.onePnode.off)} |`,
      `| 3 PNodes | ${l.threePnodes.off} | ${l.threePnodes.on} | ${ratio(l.threePnodes.on, l.threePnodes.off)} |`,
      `| 3 PNodes, 5% re-executed by other PNodes while training | ${l.threePnodes.off} | ${l.threePnodes.audited} | ${ratio(l.threePnodes.audited, l.threePnodes.off)} |`,
      '',
      `Stored per step: ${(l.ledgerBytesPerStep / 1024).toFixed(1)} KiB of ledger entries and ${(l.evidenceBytesPerStep / 1024).toFixed(0)} KiB of evidence (inputs and anchor states). \`dcnr ledger verify\` on the ${l.verify.entries} recorded messages: ${l.verify.sampleDefaultMs} ms at the default 5% sample (${l.verify.sampleDefaultRecomputed} re-executed), ${l.verify.sampleAllMs} ms re-executing all${l.verify.verified ? '' : ' — NOT verified'}.`,
      '',
    );
  }
  if (r.federated) {
    const f = r.federated;
    const plain = f.rows.find((x) => x.compress === null);
    const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
    out.push(
      `**Federated rounds** (mnist-mlp, batch ${f.batch}, the same ${f.totalSteps} × ${f.batch} samples in every row: R replicas × ${f.totalSteps}/R steps, a round every ${f.syncEvery} steps, one process${f.smoke ? '; SMOKE run, not a measurement' : ''}; ` +
        'bytes: every round\'s frames both ways, all replicas; compression: against uncompressed gradients up and back every step)',
      '',
      '| R | compress | outer | samples/s | vs R=1 | bytes/step | compression | test accuracy | vs R=1 | eval loss | replicas identical | wall s |',
      '|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|',
    );
    for (const x of f.rows) {
      const dAcc = plain ? (x.testAccuracy - plain.testAccuracy) * 100 : null;
      out.push(
        `| ${x.replicas} | ${x.compress ?? '— (plain run)'} | ${x.outer ? `${x.outer}${x.outerLr !== null ? ` lr ${x.outerLr}` : ''}` : '—'} | ${x.samplesPerSec} | ${ratio(x.samplesPerSec, plain?.samplesPerSec)} | ` +
          `${x.bytesPerStep ?? '—'} | ${x.compressionRatio !== null ? `${x.compressionRatio.toFixed(0)}×` : '—'} | ${(x.testAccuracy * 100).toFixed(2)}% | ` +
          `${dAcc === null ? '—' : `${dAcc >= 0 ? '+' : ''}${dAcc.toFixed(2)} pt`} | ${x.evalLoss.toFixed(4)} | ${x.replicasIdentical === null ? '—' : x.replicasIdentical ? 'yes' : 'NO'} | ${(x.durationMs / 1000).toFixed(1)} |`,
      );
    }
    const s = f.scaling;
    out.push(
      '',
      `Scaling model (the same ${f.totalSteps} × ${f.batch} samples on R machines, each a replica running ${f.totalSteps}/R steps): compute ${(s.stepS * 1000).toFixed(2)} ms/step (batch / the plain run's samples/s); ` +
        `a round moves ${kib(s.bytesPerRoundPerReplica)} per replica up and down (R = 3 topk:0.1, measured), every replica's through the aggregator's ${(s.linkBytesPerSec * 8) / 1e6} Mbit/s link, ` +
        `so a round costs R × that / link + ${s.roundTripS * 1000} ms; data-parallel without rounds moves 2·P·4 = ${kib(s.dataParallelBytesPerStepPerReplica)} per replica every step (P = ${s.parameters}), ` +
        `a step costs R × that / link + ${s.roundTripS * 1000} ms. Compute and communication do not overlap; R = 1 needs no link.`,
      '',
      `| machines | federated, topk:0.1, H = ${f.syncEvery} (s) | speedup | data-parallel every step (s) | speedup |`,
      '|---:|---:|---:|---:|---:|',
      ...s.predictions.map((p) => `| ${p.machines} | ${p.federatedS} | ${p.federatedSpeedup}× | ${p.dataParallelS} | ${p.dataParallelSpeedup}× |`),
      '',
    );
  }
  if (r.train) {
    const t = r.train;
    const w = t.wide as BenchResult['train']['wide'] | undefined; // absent from results saved before it existed
    const mnist = `mnist-mlp, batch ${t.batch}`;
    const wide = w && `wide-mlp, batch ${w.batch}`;
    out.push(
      `**Training** (samples/s; ${mnist}, ${t.steps} steps${w ? `; ${wide}, ${w.steps} steps` : ''}; "vs one process" is against the same model's default-backend run)`,
      '',
      '| model | run | samples/s | vs one process |',
      '|---|---|---:|---:|',
    );
    t.perBackend.forEach((b, i) => out.push(`| ${mnist} | one process, ${b.kernelMode}${i === 0 ? ' (default)' : ''} | ${b.sps} | ${ratio(b.sps, t.singleProcessSps)} |`));
    out.push(`| ${mnist} | 3 PNodes | ${t.clusterSps} | ${ratio(t.clusterSps, t.singleProcessSps)} |`);
    out.push(`| ${mnist} | PyTorch | ${t.torchSps ?? '— (no torch)'} | ${ratio(t.torchSps, t.singleProcessSps)} |`);
    if (w) {
      out.push(`| ${wide} | one process (default) | ${w.singleProcessSps} | ${ratio(w.singleProcessSps, w.singleProcessSps)} |`);
      out.push(`| ${wide} | 3 PNodes | ${w.clusterSps} | ${ratio(w.clusterSps, w.singleProcessSps)} |`);
      out.push(`| ${wide} | PyTorch | ${w.torchSps ?? '— (no torch)'} | ${ratio(w.torchSps, w.singleProcessSps)} |`);
      out.push('', `wide-mlp test accuracy ${(w.testAccuracy * 100).toFixed(1)}% after ${w.steps} steps; one process and 3 PNodes ${w.identical ? 'ended with identical parameters' : 'ended with DIFFERENT parameters (a determinism bug)'}.`);
    }
    out.push('');
    const b = t.breakdown;
    out.push(
      `Step time (${b.kernelMode}, one process, instrumented): wall ${b.wallMsPerStep} ms/step. Busy time per step, summed over the ` +
        `VNodes (they work concurrently, so the sum can exceed the wall): kernels ${b.kernelMsPerStep} ms, checkpoint commits (in the ` +
        `background: waiting for the sends they cover, KV blobs, CAS) ${b.persistMsPerStep} ms, JetStream publishes (in flight, not waited for ` +
        `one by one) ${b.publishMsPerStep} ms.` +
        (b.durabilityWaitMsPerStep !== undefined
          ? ` What the VNodes waited for (checkpoint backpressure, the send bound): ${b.durabilityWaitMsPerStep} ms/step = ${((100 * b.durabilityWaitMsPerStep) / b.wallMsPerStep).toFixed(1)}% of the step.`
          : ''),
      '',
    );
    const c = t.checkpoints;
    if (c) {
      out.push(
        `**Checkpoints** (mnist-mlp, one process): default (every ${c.defaultEvery} messages or ${c.defaultMs} ms) ${c.defaultSps} samples/s, ` +
          `${c.defaultBytesPerStep ?? '—'} B persisted per step; checkpointEvery 1 (a commit per message) ${c.every1Sps} samples/s, ` +
          `${c.every1BytesPerStep ?? '—'} B per step (${ratio(c.defaultSps, c.every1Sps)} faster); same parameters: ${c.identical ? 'yes' : 'NO (a bug)'}.`,
        '',
      );
    }
    const l = t.localEdges;
    if (l) {
      out.push(
        '**Local edges** (one process: messages between VNodes in memory only, kept in the senders\' checkpointed outboxes — the default — against `DCNR_LOCAL_DELIVERY=copy`, where each is also published to JetStream)',
        '',
        '| model | local edges | with JetStream copies | ratio |',
        '|---|---:|---:|---:|',
        `| mnist-mlp | ${l.sps} | ${l.copySps} | ${ratio(l.sps, l.copySps)} |`,
        `| wide-mlp | ${l.wideSps} | ${l.wideCopySps} | ${ratio(l.wideSps, l.wideCopySps)} |`,
        '',
        `KV bytes persisted per step (mnist-mlp): ${l.bytesPerStep ?? '—'} with local edges (outbox entries included), ${l.copyBytesPerStep ?? '—'} with copies. Same parameters: ${l.identical ? 'yes' : 'NO (a bug)'}.`,
        '',
      );
    }
    if (t.depths?.length) {
      const d0 = t.depths.find((d) => d.depth === 0);
      out.push('**Pipeline depth** (mnist-mlp, 3 PNodes; the faster of two interleaved runs each)', '', '| depth | samples/s | vs depth 0 | test accuracy | vs depth 0 |', '|---:|---:|---:|---:|---:|');
      for (const d of t.depths) {
        const dAcc = d0 ? `${((d.testAccuracy - d0.testAccuracy) * 100 >= 0 ? '+' : '')}${((d.testAccuracy - d0.testAccuracy) * 100).toFixed(2)} pt` : '—';
        out.push(`| ${d.depth} | ${d.sps} | ${d0 ? ratio(d.sps, d0.sps) : '—'} | ${(d.testAccuracy * 100).toFixed(2)}% | ${dAcc} |`);
      }
      out.push('');
    }
    if (t.auth) {
      const a = t.auth;
      out.push(
        '**Security** (mnist-mlp: auth on — every message and state commit signed and checked, the default — against `--no-auth`)',
        '',
        '| run | auth on | --no-auth | auth on vs off |',
        '|---|---:|---:|---:|',
        `| one process | ${a.singleSps} | ${a.singleNoAuthSps} | ${ratio(a.singleSps, a.singleNoAuthSps)} |`,
        `| 3 PNodes | ${a.clusterSps} | ${a.clusterNoAuthSps} | ${ratio(a.clusterSps, a.clusterNoAuthSps)} |`,
        '',
        `Same parameters with and without auth: ${a.identical ? 'yes' : 'NO'}.`,
        '',
      );
    }
  }
  if (r.recovery) {
    const x = r.recovery;
    out.push(`**Recovery** (${x.n} SIGKILLs of a PNode during training, detection timeout ${x.detectTimeoutMs} ms)`, '', '| | p50 ms | max ms |', '|---|---:|---:|');
    out.push(`| detection (last heartbeat → dead) | ${x.detect.p50Ms} | ${x.detect.maxMs} |`, `| resume (dead → all VNodes running and caught up: replay included) | ${x.resume.p50Ms} | ${x.resume.maxMs} |`);
    out.push(`| total | ${x.p50Ms} | ${x.maxMs} |`, `| SIGKILL → dead event | ${x.killToDead.p50Ms} | ${x.killToDead.maxMs} |`, '');
    if (x.replayed) out.push(`Messages the moved VNodes replayed from their checkpoints, per recovery: p50 ${x.replayed.p50}, max ${x.replayed.max}.`, '');
  }
  if (r.memory) {
    const m = r.memory;
    const target = m.pnodes.length > 0 ? Math.round(m.singleProcessPeakRssMiB / m.pnodes.length + 100) : NaN;
    out.push(`**Memory** (${(m.parameters / 1e6).toFixed(1)}M parameters, Adam, ${m.steps} steps × batch ${m.batch}; peak RSS MiB)`, '', '| process | VNodes | peak before training | peak RSS |', '|---|---|---:|---:|');
    for (const p of m.pnodes) out.push(`| ${p.id} | ${p.vnodes.map((v) => v.split('.').pop()).join(', ') || '—'} | ${p.idlePeakRssMiB ?? '—'} | ${p.peakRssMiB} |`);
    out.push(
      `| one process, whole model | all | | ${m.singleProcessPeakRssMiB} |`,
      `| largest PNode vs one process | | | ${ratio(m.maxPNodePeakRssMiB, m.singleProcessPeakRssMiB)} |`,
      `| target: one process / ${m.pnodes.length} + 100 MiB | | | ${target} (${m.maxPNodePeakRssMiB <= target ? 'met' : 'not met'}) |`,
      '',
    );
  }
  if (r.scale) {
    const s = r.scale;
    out.push(`**Scale** (${s.vnodes} VNodes over ${s.pnodes} PNodes)`, '', '| | |', '|---|---:|');
    out.push(
      `| activation: placed → running p50 / p99 | ${s.activation.p50Ms} / ${s.activation.p99Ms} ms |`,
      `| activation work p50 / p99 | ${s.activation.workP50Ms} / ${s.activation.workP99Ms} ms |`,
      `| all ${s.vnodes} running after | ${s.activation.allActiveMs} ms |`,
      `| memory per idle VNode | ${(s.bytesPerIdleVNode / 1024).toFixed(1)} KiB |`,
      `| memory per passivated VNode (RSS kept by the allocator) | ${(s.bytesPerPassivatedVNode / 1024).toFixed(1)} KiB |`,
      `| passivated after ${s.passivation.afterIdleMs} ms idle | ${s.passivation.passivated} in ${s.passivation.allPassivatedMs} ms |`,
      `| reactivation: first wake / work p50 / p99 | ${s.reactivation.firstWakeMs} / ${s.reactivation.workP50Ms} / ${s.reactivation.workP99Ms} ms (${s.reactivation.woken} woken) |`,
      '',
    );
  }
  return out.join('\n');
}
