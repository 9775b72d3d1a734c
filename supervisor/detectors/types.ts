/**
 * Failure detectors decide when a silent PNode is dead. One per file behind this
 * interface, so a phi-accrual detector can sit beside the timeout one.
 */
export interface FailureDetector {
  /** A heartbeat from `pnode` arrived at local time `at` (ms). */
  heartbeat(pnode: string, at: number): void;
  /** Is `pnode` considered dead at local time `now`? */
  isDead(pnode: string, now: number): boolean;
}
