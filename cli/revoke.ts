/** `dcnr revoke <pnode> [--nats URL]`: the registrar revokes a PNode's credentials; its connections close. */
import { Subject } from '../runtime/protocol.js';
import { fail, printResult } from './output.js';
import { connectNats } from '../cluster/process.js';

export async function revokeCommand(pnode: string, opts: { nats: string; json: boolean }): Promise<void> {
  const nc = await connectNats(opts.nats, 'dcnr-revoke').catch((err) => fail(err.message));
  try {
    const msg = await nc.request(Subject.control('revoke'), JSON.stringify({ pnode }), { timeout: 20_000 }).catch((err) => {
      fail(`no registrar answered the revoke request (${err.message}): is a supervisor with --registrar-port running, and are these the supervisor's (admin) credentials?`, 1);
    });
    let reply: { ok?: unknown; error?: unknown; keys?: unknown };
    try {
      reply = JSON.parse(msg.string()) as typeof reply;
    } catch {
      fail('the revoke request got an answer that is not JSON', 1);
    }
    const keys = Array.isArray(reply.keys) ? reply.keys.filter((k): k is string => typeof k === 'string') : [];
    const ok = reply.ok === true;
    printResult({ ok, pnode, keys, ...(ok ? {} : { error: String(reply.error) }) }, opts.json, () => (ok ? `${pnode} revoked (${keys.length} key${keys.length === 1 ? '' : 's'}): its connections are closed` : `revoke failed: ${String(reply.error)}`));
    if (!ok) process.exitCode = 1;
  } finally {
    await nc.close();
  }
}
