/** Every fault kind, by name (one line each). */
import { byzantinePNode } from './byzantine-pnode.js';
import { churn } from './churn.js';
import { degradingPNode } from './degrading-pnode.js';
import { hostileClient } from './hostile-client.js';
import { roguePNode } from './rogue-pnode.js';
import { killNats } from './kill-nats.js';
import { killNatsNode } from './kill-nats-node.js';
import { killPNode } from './kill-pnode.js';
import { killSupervisor } from './kill-supervisor.js';
import { killSupervisorLeader } from './kill-supervisor-leader.js';
import { malformedMessages } from './malformed-messages.js';
import { partition } from './partition.js';
import { pausePNode } from './pause-pnode.js';
import { restartNats } from './restart-nats.js';
import { restartPNode } from './restart-pnode.js';
import { slowPNode } from './slow-pnode.js';
import type { FaultKind } from './types.js';

export const FAULT_KINDS: Record<string, FaultKind> = Object.fromEntries(
  [killPNode, pausePNode, restartPNode, slowPNode, degradingPNode, killSupervisor, killSupervisorLeader, restartNats, killNats, killNatsNode, partition, malformedMessages, churn, hostileClient, roguePNode, byzantinePNode].map((f) => [f.kind, f]),
);
