/**
 * Placement strategies choose a PNode for each VNode that needs one. One per file
 * behind this interface (Orleans' PlacementDirector), so adding one touches nothing else.
 */
import type { MemberView } from '../../runtime/protocol.js';

export interface PlacementInput {
  /** VNodes to place, as `<deployment>.<index>`, in index order. */
  toPlace: string[];
  /** PNodes that may take VNodes (alive, not draining). */
  candidates: MemberView[];
  /** Current assignment of every owned VNode: vnode → pnode (including those not moving). */
  current: Map<string, string>;
  /** Estimated bytes in memory of every wanted VNode (`VNodeShapes.stateBytes`); missing = small. */
  bytes?: ReadonlyMap<string, number>;
  /**
   * Each VNode's group, where its deployment has several (a federated deployment's
   * replicas, `r<k>`, and its aggregators, `agg`): neighbours are kept together only
   * within a group, so each replica's pipeline tends to a PNode of its own. Missing = one group.
   */
  groups?: ReadonlyMap<string, string>;
}

export interface PlacementStrategy {
  readonly name: string;
  /** A PNode for each VNode in `toPlace` (all of them, when there is any candidate). */
  place(input: PlacementInput): Map<string, string>;
}
