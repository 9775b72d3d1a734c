/**
 * Tracing as a user turns it on, in real processes: `dcnr --otel console train
 * --pnodes 2` passes the flag to the PNode processes it starts, and a training step
 * is ONE trace across them — the trainer's `train step` span (printed by the train
 * process) is the ancestor of the `vnode …` spans the PNode processes print, linked
 * only through the `traceparent` NATS header. stdout stays the `--json` contract's.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './helpers/nats.js';

const bin = fileURLToPath(new URL('../bin/dcnr.js', import.meta.url));

interface SpanLine {
  name: string;
  trace: string;
  span: string;
  parent: string;
  attributes: Record<string, unknown>;
}

/** `otel span <name> trace=… span=… parent=… <ms>ms {attributes}` → its fields. */
function spanLines(text: string): SpanLine[] {
  const out: SpanLine[] = [];
  for (const line of text.split('\n')) {
    const m = /^otel span (.+?) trace=([0-9a-f]{32}) span=([0-9a-f]{16}) parent=(\S+) \S+ms (\{.*\})$/.exec(line);
    if (m) out.push({ name: m[1], trace: m[2], span: m[3], parent: m[4], attributes: JSON.parse(m[5]) });
  }
  return out;
}

const dir = tempDir('dcnr-otel-cli-');
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('dcnr --otel console train --pnodes 2: one step is one trace across the train process and both PNode processes', async () => {
  const store = join(dir, 'store');
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_') && k !== 'DCNR_OTEL'));
  const args = [bin, '--otel', 'console', 'train', '--model', 'mnist-mlp', '--pnodes', '2', '--steps', '4', '--batch', '8', '--seed', '3', '--store', store, '--json'];
  const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  assert.is(run.code, 0, run.stderr.slice(-2000));
  const json = JSON.parse(run.stdout.trim().split('\n').pop()!);
  assert.is(json.steps, 4);
  assert.not.match(run.stdout, /otel span/, 'spans never go to stdout');

  const trainer = spanLines(run.stderr);
  const root = trainer.find((s) => s.name === 'train step' && s.attributes['dcnr.seq'] === 0);
  assert.ok(root, `the train process printed the root span of step 0:\n${run.stderr.slice(-1500)}`);
  // Each PNode process logs to <store>/logs/<name>.log; its spans are there.
  const logs = readdirSync(join(store, 'logs')).filter((f) => f.startsWith('pnode-'));
  assert.is(logs.length, 2);
  const step: SpanLine[] = trainer.filter((s) => s.trace === root.trace);
  const pnodesWithSpans = new Set<string>();
  for (const f of logs) {
    const spans = spanLines(readFileSync(join(store, 'logs', f), 'utf8')).filter((s) => s.trace === root.trace);
    for (const s of spans) pnodesWithSpans.add(String(s.attributes['dcnr.pnode']));
    step.push(...spans);
  }
  // Six VNodes on two PNodes: the capacity-weighted placement gives each PNode a share
  // unless one measured six times the other's GFLOP/s, so both host VNodes and both
  // print spans of this step: train → pnode-a → pnode-b → train.
  const handled = step.filter((s) => s.name.startsWith('vnode '));
  assert.is(handled.filter((s) => s.name === 'vnode fwd').length, 6, 'fwd through all six VNodes');
  assert.is(handled.filter((s) => s.name === 'vnode bwd').length, 5, 'bwd back through five');
  const capacities = logs.map((f) => /PNode \S+ \(pid \d+\) up: .*/.exec(readFileSync(join(store, 'logs', f), 'utf8'))?.[0]).join('; ');
  assert.equal([...pnodesWithSpans].sort(), ['pnode-1', 'pnode-2'], `PNodes with spans of step 0 (${capacities})`);
  // Every span's parent is in the same trace: the chain is unbroken across processes.
  const ids = new Set(step.map((s) => s.span));
  for (const s of step) if (s !== root) assert.ok(ids.has(s.parent), `${s.name} (${s.attributes['dcnr.pnode'] ?? 'train'}) has its parent in the trace`);
  // And every VNode span reaches the root by its parents.
  const byId = new Map(step.map((s) => [s.span, s]));
  for (const s of handled) {
    let at: SpanLine | undefined = s;
    for (let hops = 0; at && at !== root && hops < 50; hops++) at = byId.get(at.parent);
    assert.ok(at === root, `${s.name} on ${s.attributes['dcnr.pnode']} descends from the train step span`);
  }
});

test.run();
