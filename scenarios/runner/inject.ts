/**
 * Injecting a scenario's faults at their steps: as training progress passes a fault's
 * `atStep`, its kind's `inject` runs (one at a time, in step order). What was injected
 * and what failed to inject are kept for the checks.
 */
import { FAULT_KINDS } from '../faults/index.js';
import type { FaultContext, InjectedFault, ScheduledFault } from '../faults/types.js';

export interface Injector {
  /** Training has completed `done` steps. */
  progress(done: number): void;
  /** Wait for the injections under way. */
  settle(): Promise<void>;
  readonly injected: InjectedFault[];
  readonly errors: string[];
}

export function scheduleFaults(faults: ScheduledFault[], ctx: FaultContext, log: (line: string) => void): Injector {
  const pending = [...faults].sort((a, b) => a.atStep - b.atStep);
  const injected: InjectedFault[] = [];
  const errors: string[] = [];
  let chain: Promise<void> = Promise.resolve();
  return {
    injected,
    errors,
    progress(done) {
      while (pending.length && done >= pending[0].atStep) {
        const f = pending.shift()!;
        chain = chain.then(async () => {
          log(`step ${done}: injecting ${f.kind}${f.target ? ` on ${f.target}` : ''}`);
          try {
            const r = await FAULT_KINDS[f.kind].inject(ctx, f);
            injected.push(r);
            log(`  ${r.detail}`);
          } catch (err) {
            errors.push(`${f.kind}@${f.atStep}: ${(err as Error).message}`);
            log(`  ${f.kind} failed: ${(err as Error).message}`);
          }
        });
      }
    },
    settle: () => chain,
  };
}
