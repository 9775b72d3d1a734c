/**
 * `byzantine-pnode`: a PNode that lies. From `atStep` on, every gradient it sends is
 * scaled by `1 + count/1000` (default 1.01) — and recorded in its ledger, and signed, as
 * if it were right: nothing about its messages looks wrong. Only re-executing its work
 * shows it (supervisor/audit.ts). The fault waits, up to `durationMs` (default 120 s),
 * for the supervisor to quarantine it, and reports when (in training steps, read off the
 * loss metrics) against the detection latency the audit share predicts (docs/ledger.md):
 *
 *   a liar owning k VNodes that send gradients, each segment S = ANCHOR_EVERY / 2 steps
 *   long and audited with probability p: a segment period catches it with probability
 *   q = 1 − (1 − p)^k, so detection comes ≈ S/2 (the segment in progress) + S/q steps after
 *   it starts lying, plus the audit's own time; with probability 1 − 10⁻³ within
 *   (⌈ln 10⁻³ / ln(1 − q)⌉ + 1)·S steps.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { collectStatus } from '../../cluster/status.js';
import { subscribeClusterEvents } from '../../runtime/cluster-state.js';
import { ANCHOR_EVERY } from '../../runtime/ledger/recorder.js';
import { Subject, type ClusterEvent } from '../../runtime/protocol.js';
import { parseStepMetric } from '../../runtime/records.js';
import { setFaultControl } from './fault-control.js';
import type { FaultKind } from './types.js';

export const byzantinePNode: FaultKind = {
  kind: 'byzantine-pnode',
  description: 'a PNode scales every gradient it sends by 1.01 and signs it as right; spot re-execution must catch and quarantine it',
  needs: { faultControl: true },
  async inject(ctx, fault) {
    const [t] = await ctx.pickPNodes(fault.target);
    const factor = 1 + (fault.count ?? 10) / 1000;
    const waitMs = fault.durationMs ?? 120_000;
    const owned = (await collectStatus(ctx.nc)).vnodes.filter((v) => v.pnode === t).map((v) => v.id);
    // Only a VNode that sends gradients can lie with them (the first reads the dataset: it sends none).
    const lying = owned.filter((id) => ctx.model.vnodes[Number(id.split('.')[1])]?.inputs.some((i) => i >= 0));
    let step = fault.atStep;
    const metrics = ctx.nc.subscribe(Subject.metrics(ctx.deployment), {
      callback: (_err, m) => {
        const metric = parseStepMetric(m.data);
        if (metric) step = Math.max(step, metric.seq + 1);
      },
    });
    let caught: (ClusterEvent & { type: 'quarantined' }) | undefined;
    let caughtAtStep: number | undefined;
    const events = subscribeClusterEvents(ctx.nc, (e) => {
      if (e.type === 'quarantined' && e.pnode === t && !caught) {
        caught = e;
        caughtAtStep = step;
      }
    });
    const at = Date.now();
    await setFaultControl(ctx.nc, this.kind, t, { corruptGradients: factor });
    ctx.log(`  ${t} (owning ${owned.join(', ') || 'nothing'}) now scales its gradients by ${factor}`);
    const until = Date.now() + waitMs;
    while (!caught && Date.now() < until) await sleep(100);
    metrics.unsubscribe();
    events.unsubscribe();
    const segmentSteps = ANCHOR_EVERY / 2;
    const detail = caught
      ? `${t} lied from step ${fault.atStep} (gradients ×${factor}); quarantined at step ${caughtAtStep} (${caughtAtStep! - fault.atStep} steps, ${caught.at - at} ms later): ${caught.vnode} seq ${caught.seq}, found by ${caught.auditor}: ${caught.reason}`
      : `${t} lied from step ${fault.atStep} (gradients ×${factor}) and was not caught within ${waitMs} ms`;
    ctx.log(`byzantine-pnode: ${detail}`);
    return {
      kind: this.kind,
      target: t,
      atStep: fault.atStep,
      at,
      expectDead: [],
      detail,
      byzantine: {
        detectedAtStep: caughtAtStep ?? null,
        stepsToDetect: caughtAtStep !== undefined ? caughtAtStep - fault.atStep : null,
        quarantined: caught !== undefined,
        ownedVNodes: lying.length,
        segmentSteps,
      },
    };
  },
};
