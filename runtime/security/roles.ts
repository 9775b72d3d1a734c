/**
 * Roles and their NATS permissions (least privilege, enforced by nats-server from the
 * user JWT each process connects with). What a role may not do is refused by the
 * server itself: a publish outside `pub.allow` (or inside `pub.deny`) never reaches
 * anyone. What static permissions cannot express (who owns a VNode now) is left to the
 * signatures of docs/threat-model.md.
 *
 *   supervisor  the trusted core: placement, ownership records, admission, revocation
 *   trainer     deploys, feeds its data, reads metrics; never membership or heartbeats.
 *               It may delete a replaced run's ownership records (trainer/deploy.ts), so
 *               it can write them: closed by the supervisor's signature on ownership
 *               records (docs/threat-model.md, open)
 *   pnode       its own heartbeats, events and member record, mailboxes, state; never ownership,
 *               deployments, membership, or another PNode's heartbeats
 *   observer    reads everything; publishes nothing that changes anything (an inference
 *               request changes nothing: `dcnr serve` runs as an observer)
 */
import { Bucket } from '../protocol.js';

export const ROLES = ['supervisor', 'trainer', 'pnode', 'observer'] as const;
export type Role = (typeof ROLES)[number];

export interface RolePermissions {
  pub: { allow: string[]; deny: string[] };
  sub: { allow: string[]; deny: string[] };
}

const kv = (bucket: string) => `$KV.${bucket}.>`;
/** JetStream API calls that only read (info, direct/message get, stream names). */
const JS_READ = ['$JS.API.INFO', '$JS.API.STREAM.INFO.>', '$JS.API.STREAM.NAMES', '$JS.API.STREAM.LIST', '$JS.API.CONSUMER.INFO.>', '$JS.API.CONSUMER.NAMES.>', '$JS.API.CONSUMER.LIST.>', '$JS.API.DIRECT.GET.>', '$JS.API.STREAM.MSG.GET.>'];
/** Replies to our own requests, JetStream flow control and acks. */
const PLUMBING = ['_INBOX.>', '$JS.FC.>'];
/** JetStream calls that destroy or reshape what others use. */
const JS_DESTRUCTIVE = ['$JS.API.STREAM.DELETE.>', '$JS.API.STREAM.PURGE.>', '$JS.API.STREAM.UPDATE.>', '$JS.API.STREAM.MSG.DELETE.>'];

/** The NATS permissions of `role`; `name` is the PNode's (its heartbeat and event subjects). */
export function rolePermissions(role: Role, name?: string): RolePermissions {
  switch (role) {
    case 'supervisor':
      return { pub: { allow: ['>'], deny: [] }, sub: { allow: ['>'], deny: [] } };
    case 'trainer':
      return {
        pub: {
          allow: ['>'],
          deny: [kv(Bucket.Members), kv(Bucket.Epochs), 'dcnr.hb.>', 'dcnr.events.>', 'dcnr.ctl.fault.>', 'dcnr.ctl.audit.>', 'dcnr.ctl.revoke', ...[Bucket.Members, Bucket.Epochs].flatMap((b) => JS_DESTRUCTIVE.map((d) => d.replace('>', `KV_${b}`))), '$JS.API.STREAM.RESTORE.>', '$JS.API.SERVER.>', '$JS.API.META.>', '$JS.API.STREAM.PEER.>', '$JS.API.STREAM.LEADER.>'],
        },
        sub: { allow: ['>'], deny: [] },
      };
    case 'pnode': {
      if (!name || !/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`a PNode's credentials need its name (letters, digits, - and _), got ${JSON.stringify(name)}`);
      return {
        pub: {
          allow: [
            `dcnr.hb.${name}`,
            `dcnr.events.${name}`,
            `$KV.${Bucket.Members}.${name}`,
            'dcnr.mbox.>',
            'dcnr.metrics.>',
            'dcnr.dlq.>',
            'dcnr.errors.>',
            'dcnr.ledger.>',
            'dcnr.evidence.>',
            kv(Bucket.State),
            '$JS.API.>',
            '$JS.ACK.>',
            ...PLUMBING,
          ],
          deny: [...JS_DESTRUCTIVE, '$JS.API.STREAM.CREATE.>', '$JS.API.STREAM.RESTORE.>', '$JS.API.SERVER.>', '$JS.API.META.>', '$JS.API.STREAM.PEER.>', '$JS.API.STREAM.LEADER.>', '$JS.API.CONSUMER.LEADER.>'],
        },
        sub: { allow: ['>'], deny: [] },
      };
    }
    case 'observer':
      // Ordered consumers only over KV and metrics subjects (the create subject carries the
      // filter): never one on a mailbox stream, where it could take a VNode's inputs.
      return {
        pub: { allow: [...JS_READ, ...PLUMBING, 'dcnr.infer.>', '$JS.API.CONSUMER.CREATE.*.*.$KV.>', '$JS.API.CONSUMER.CREATE.*.*.dcnr.metrics.>', '$JS.API.CONSUMER.CREATE.*.*.dcnr.ledger.>', '$JS.API.CONSUMER.MSG.NEXT.*.*'], deny: [] },
        sub: { allow: ['>'], deny: [] },
      };
  }
}
