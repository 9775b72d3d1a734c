/**
 * The data owners of a federated run as processes on this machine (docs/federated.md):
 * one `dcnr feed` per replica, each given only its own shard file (`dcnr train
 * --replicas R` and the scenarios cut them: trainer/shards.ts). Their output goes to
 * stderr, prefixed; one that fails stops the run with its last lines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { defaultCreds, CREDS_ENV, PARENT_ENV } from './process.js';

const BIN = fileURLToPath(new URL('../bin/dcnr.js', import.meta.url));

export interface FeedersOptions {
  url: string;
  deployment: string;
  /** Replica r's shard file, replica order. */
  shards: string[];
  signal?: AbortSignal;
}

/** Run one feeder per replica; resolves when all exit 0 (connecting with this process's credentials for `url`). */
export async function runFeeders(o: FeedersOptions): Promise<void> {
  const files = o.shards;
  const creds = defaultCreds(o.url);
  const children: ChildProcess[] = [];
  const kill = () => children.forEach((c) => c.exitCode === null && c.kill('SIGTERM'));
  o.signal?.addEventListener('abort', kill, { once: true });
  try {
    await Promise.all(
      files.map(
        (shard, r) =>
          new Promise<void>((resolve, reject) => {
            const args = [BIN, 'feed', '--deployment', o.deployment, '--replica', String(r), '--shard', shard, '--nats', o.url];
            const env = { ...process.env, [PARENT_ENV]: String(process.pid), ...(creds ? { [CREDS_ENV]: creds } : {}) };
            const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
            children.push(child);
            const tail: string[] = [];
            createInterface({ input: child.stderr! }).on('line', (line) => {
              tail.push(line);
              if (tail.length > 20) tail.shift();
              // Their progress lines would interleave with the trainer's: only what is not progress is shown.
              if (!/^feed replica \d+: \d+\/\d+ steps/.test(line)) process.stderr.write(`[feed ${r}] ${line}\n`);
            });
            child.on('error', reject);
            child.on('exit', (code, sig) => {
              if (code === 0) resolve();
              else reject(new Error(`the feeder of replica ${r} exited with ${sig ?? `code ${code}`}:\n${tail.join('\n')}`));
            });
          }),
      ),
    );
  } catch (err) {
    kill();
    throw err;
  } finally {
    o.signal?.removeEventListener('abort', kill);
  }
}
