/**
 * A scenario is one file in scenarios/ whose default export is `defineScenario({...})`:
 * the cluster, the training run, the fault schedule and (optionally) extra checks.
 * The runner (scenarios/runner/run.ts) does the rest; see README "Fault-injection scenarios".
 *
 * @example
 * export default defineScenario({
 *   name: 'kill-two',
 *   description: 'two PNodes SIGKILLed one after the other',
 *   pnodes: 4,
 *   steps: 200,
 *   faults: [{ kind: 'kill-pnode', atStep: 40 }, { kind: 'kill-pnode', atStep: 120 }],
 * });
 */
import { z } from 'zod';
import type { ScenarioReport } from './report.js';

export const ScenarioSpec = z
  .object({
    /** kebab-case name; reports are filed under it. */
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'name must be kebab-case'),
    description: z.string().min(1),
    /** PNodes at the start. @default 3 */
    pnodes: z.number().int().min(1).max(16).default(3),
    /** Built-in model name or spec file. @default 'mnist-mlp' */
    model: z.string().default('mnist-mlp'),
    steps: z.number().int().min(10).max(100_000).default(200),
    batch: z.number().int().min(1).max(4096).default(32),
    /** Default seed (`--seed` overrides). @default 1 */
    seed: z.number().int().min(0).default(1),
    /** Supervisor detection timeout. @default 1000 */
    detectMs: z.number().int().min(200).max(60_000).default(1000),
    /**
     * Serve the run while it trains (scenarios/runner/serve-load.ts): `concurrency`
     * clients send /v1/predict pinned to the run's first served version (one kept every
     * `versionEvery` steps); the report gives failed requests and p50/p99 per phase.
     */
    serve: z.object({ concurrency: z.number().int().min(1).max(256).default(8), versionEvery: z.number().int().min(1).default(20) }).strict().optional(),
    /**
     * Train a federated deployment (docs/federated.md): `replicas` copies fed by their own
     * `dcnr feed` processes, a round every `syncEvery` steps (`steps` must be a multiple).
     */
    federation: z
      .object({
        replicas: z.number().int().min(1).max(16),
        syncEvery: z.number().int().min(1),
        outer: z.enum(['avg', 'nesterov']).default('avg'),
        compress: z.string().default('none'),
      })
      .strict()
      .optional(),
    /** Share of ledger segments the supervisor has another PNode re-execute (docs/ledger.md). @default the supervisor's (5%) */
    auditShare: z.number().min(0).max(1).optional(),
    /** Part of the quick set CI runs. @default false */
    quick: z.boolean().default(false),
    faults: z
      .array(
        z
          .object({
            kind: z.string(),
            atStep: z.number().int().min(0),
            target: z.string().optional(),
            durationMs: z.number().int().min(0).max(600_000).optional(),
            count: z.number().int().min(0).max(1_000_000).optional(),
          })
          .strict(),
      )
      .min(1, 'a scenario injects at least one fault'),
  })
  .strict()
  .refine((s) => !s.federation || s.steps % s.federation.syncEvery === 0, { message: 'federation.syncEvery must divide steps (whole rounds)', path: ['federation', 'syncEvery'] });

export type ScenarioSpecInput = z.input<typeof ScenarioSpec>;

/** An extra check: gets the report so far, returns pass/fail with a detail. */
export type ScenarioCheck = (report: ScenarioReport) => { name: string; passed: boolean; detail: string };

export interface Scenario {
  spec: z.output<typeof ScenarioSpec>;
  checks: ScenarioCheck[];
}

/** Validate a scenario definition (a clear error names the bad field). */
export function defineScenario(input: ScenarioSpecInput & { checks?: ScenarioCheck[] }): Scenario {
  const { checks = [], ...rest } = input;
  const parsed = ScenarioSpec.safeParse(rest);
  if (!parsed.success) {
    throw new Error(`invalid scenario ${JSON.stringify((rest as { name?: string }).name ?? '?')}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  }
  return { spec: parsed.data, checks };
}
