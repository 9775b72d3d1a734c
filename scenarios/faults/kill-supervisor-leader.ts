/**
 * `kill-supervisor-leader`: SIGKILL the leading supervisor for good (no restart) and, at
 * once, the busiest PNode, so that the dead PNode's VNodes can only be placed by the
 * standby once it has taken the lease. Takeover is measured from the leader's death to
 * the first placement (`assigned` event) by the new leader; the standby's `elected`
 * event gives when it took the lease.
 */
import { openBuckets, subscribeClusterEvents } from '../../runtime/cluster-state.js';
import type { ClusterEvent } from '../../runtime/protocol.js';
import { SupervisorKey } from '../../runtime/protocol.js';
import { parseEntry, parseLeaseRecord } from '../../runtime/records.js';
import type { FaultKind } from './types.js';

export const killSupervisorLeader: FaultKind = {
  kind: 'kill-supervisor-leader',
  description: 'SIGKILL the leading supervisor (no restart) and the busiest PNode: the standby must take over and place',
  needs: { supervisors: 2 },
  async inject(ctx, fault) {
    const { members } = await openBuckets(ctx.nc);
    const lease = parseEntry(await members.get(SupervisorKey.lease), parseLeaseRecord);
    if (!lease) throw new Error('kill-supervisor-leader: no supervisor holds the lease');
    const leader = ctx.cluster.procs.get(lease.holder);
    if (!leader) throw new Error(`kill-supervisor-leader: the lease holder ${lease.holder} is not one of this cluster's processes`);
    const [pnode] = await ctx.pickPNodes(fault.target ?? 'busiest');
    const seen: Array<ClusterEvent & { received: number }> = [];
    const sub = subscribeClusterEvents(ctx.nc, (e) => seen.push({ ...e, received: Date.now() }));
    ctx.cluster.expectExit(lease.holder);
    leader.kill('SIGKILL');
    const at = Date.now();
    ctx.cluster.expectExit(pnode);
    ctx.cluster.procs.get(pnode)!.kill('SIGKILL');
    // Wait (bounded) for the new leader's first placement, to report the takeover.
    const deadline = at + Math.max(15_000, 10 * ctx.detectMs);
    let elected: (ClusterEvent & { received: number }) | undefined;
    let placed: (ClusterEvent & { received: number }) | undefined;
    while (Date.now() < deadline && !placed) {
      await new Promise((r) => setTimeout(r, 20));
      elected ??= seen.find((e) => e.type === 'elected' && e.term > lease.term);
      if (elected) placed = seen.find((e) => e.type === 'assigned' && e.received >= elected!.received);
    }
    sub.unsubscribe();
    const takeoverMs = placed ? placed.received - at : undefined;
    const who = elected && elected.type === 'elected' ? elected.supervisor : 'nobody';
    ctx.log(`kill-supervisor-leader: ${lease.holder} (term ${lease.term}) and ${pnode} SIGKILLed; ${who} elected${elected ? ` after ${elected.received - at} ms` : ''}, first placement ${takeoverMs !== undefined ? `after ${takeoverMs} ms` : 'not seen'}`);
    return {
      kind: this.kind,
      target: `${lease.holder},${pnode}`,
      atStep: fault.atStep,
      at,
      expectDead: [pnode],
      ...(takeoverMs !== undefined ? { takeoverMs } : {}),
      detail: `SIGKILL leader ${lease.holder} (term ${lease.term}) and ${pnode}; ${who} took over${elected ? ` in ${elected.received - at} ms` : ''}, first placement ${takeoverMs !== undefined ? `${takeoverMs} ms after the kill` : 'not seen within the wait'}`,
    };
  },
};
