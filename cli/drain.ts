/** `dcnr drain <pnode> [--nats URL]`: move every VNode off a PNode, nothing lost. */
import { Subject } from '../runtime/protocol.js';
import { parseDrainReply } from '../runtime/records.js';
import { fail, printResult } from './output.js';
import { connectNats } from '../cluster/process.js';

export async function drainCommand(pnode: string, opts: { nats: string; json: boolean }): Promise<void> {
  const nc = await connectNats(opts.nats, 'dcnr-drain').catch((err) => fail(err.message));
  try {
    process.stderr.write(`draining ${pnode}: waiting for its VNodes to run elsewhere …\n`);
    const msg = await nc.request(Subject.control('drain'), JSON.stringify({ pnode }), { timeout: 70_000 }).catch((err) => {
      fail(`no supervisor answered the drain request (${err.message}); is one running?`, 1);
    });
    const parsed = parseDrainReply(msg.data);
    if (!parsed.ok) fail(`the drain request got an answer that is not a drain reply (${parsed.error})`, 1);
    const reply = parsed.value;
    printResult(reply as unknown as Record<string, unknown>, opts.json, () =>
      reply.ok ? `${pnode} drained: moved ${reply.moved.length} VNodes (${reply.moved.join(', ') || 'none'})` : `drain failed: ${reply.error}`,
    );
    if (!reply.ok) process.exitCode = 1;
  } finally {
    await nc.close();
  }
}
