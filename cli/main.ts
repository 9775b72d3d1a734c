/**
 * `dcnr` — the command line of the Distributed Composable Neural Runtime.
 * Every command's `--json` output is one JSON object on the last stdout line.
 */
import { resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { CREDS_ENV, readCreds } from '../cluster/process.js';
import { LOG_LEVELS, logLevelFromEnv } from '../runtime/log.js';
import { DEFAULT_HANG_MS } from '../runtime/pnode/heartbeat.js';
import { OTEL_MODES } from '../runtime/telemetry.js';
import { loadVNodeTypes, typeFiles, TYPES_ENV } from '../runtime/types-loader.js';
import { benchCommand } from './bench.js';
import { drainCommand } from './drain.js';
import { exportCommand } from './export.js';
import { ledgerCommand } from './ledger.js';
import { generateCommand } from './generate.js';
import { pnodeCommand } from './pnode.js';
import { revokeCommand } from './revoke.js';
import { authInitCommand } from './auth.js';
import { scenarioCommand } from './scenario.js';
import { serveCommand } from './serve.js';
import { statusCommand } from './status.js';
import { DEFAULT_AUDIT_SHARE } from '../supervisor/audit.js';
import { DEFAULT_DRAIN_AT_RISK } from '../supervisor/supervisor.js';
import { supervisorCommand } from './supervisor.js';
import { trainCommand } from './train.js';
import { feedCommand } from './feed.js';
import { MAX_REPLICAS } from '../runtime/federated/federation.js';
import { upCommand } from './up.js';

const int = (min: number) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}, got ${JSON.stringify(value)}`);
  return n;
};

/** A risk threshold in (0, 1], or `off` (null: never drain for risk). */
const riskThreshold = (value: string) => {
  if (value === 'off') return null;
  const r = Number(value);
  if (!(r > 0 && r <= 1)) throw new InvalidArgumentError(`expected a risk in (0, 1] or "off", got ${JSON.stringify(value)}`);
  return r;
};

const share = (value: string) => {
  const p = Number(value);
  if (!(p >= 0 && p <= 1)) throw new InvalidArgumentError(`expected a share in [0, 1], got ${JSON.stringify(value)}`);
  return p;
};

const program = new Command()
  .name('dcnr')
  .description('Distributed Composable Neural Runtime: durable VNode actors on NATS JetStream')
  .option('--log-level <level>', `log level: ${LOG_LEVELS.join(', ')} (env DCNR_LOG_LEVEL)`)
  .option('--otel <mode>', `OpenTelemetry: ${OTEL_MODES.join(', ')} (default: off unless OTEL_* env vars ask for it; env DCNR_OTEL)`)
  .option('--creds <file>', 'NATS credentials to connect with (env DCNR_CREDS; `dcnr up` writes them under <store>/auth/)')
  .showHelpAfterError();

// Global options become environment variables, so every child process (dcnr up,
// train --pnodes N, scenarios) inherits them.
program.hook('preAction', () => {
  const { logLevel, otel, creds } = program.opts<{ logLevel?: string; otel?: string; creds?: string }>();
  if (creds !== undefined) {
    try {
      readCreds(creds);
    } catch (err) {
      program.error((err as Error).message);
    }
    process.env[CREDS_ENV] = resolve(creds);
  }
  if (logLevel !== undefined) {
    if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) program.error(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);
    process.env.DCNR_LOG_LEVEL = logLevel;
  }
  if (otel !== undefined) {
    if (!(OTEL_MODES as readonly string[]).includes(otel)) program.error(`--otel must be one of ${OTEL_MODES.join(', ')}, got ${JSON.stringify(otel)}`);
    process.env.DCNR_OTEL = otel;
  }
  // The environment may carry them too (a parent's flags, a container's env): check once, here.
  try {
    logLevelFromEnv();
  } catch (err) {
    program.error(`DCNR_LOG_LEVEL: ${(err as Error).message}`);
  }
});

// `--no-auth` on a launcher: its private nats-server (and its children) without auth.
program.hook('preAction', (_program, action) => {
  if (action.opts<{ auth?: boolean }>().auth === false) process.env.DCNR_AUTH = 'off';
});

// VNode types from the user's files: `--types` (absolute paths into DCNR_TYPES, which every
// child process inherits: `dcnr up` and `train --pnodes N` pass them to their PNodes).
program.hook('preAction', async (_program, action) => {
  const flag = action.opts<{ types?: string }>().types;
  if (flag !== undefined) process.env[TYPES_ENV] = typeFiles(flag).join(',');
  try {
    await loadVNodeTypes(typeFiles(process.env[TYPES_ENV]));
  } catch (err) {
    program.error((err as Error).message);
  }
});

const TYPES_HELP = 'VNode types from your own modules: FILE[,FILE…] (env DCNR_TYPES); a file imports the API from "dcnr"';

program
  .command('train')
  .description('deploy a model and train it on its dataset (MNIST digits, names, or a text file)')
  .option('--model <name|file>', 'built-in model name or a JSON model spec file (default: mnist-mlp, or the spec in the --init file)', 'mnist-mlp')
  .option('--init <file>', 'start from the parameters in this safetensors file (`dcnr export` writes one) instead of a random init')
  .option('--steps <n>', 'training steps (micro-batches)', int(1), 600)
  .option('--batch <n>', 'rows per micro-batch', int(1), 64)
  .option('--seed <n>', 'seed for init and batch order', int(0), 1)
  .option('--pnodes <n>', '0 = every VNode in this process; N = a private cluster of N PNode processes (default: 0, or the running cluster with --nats)', int(0))
  .option('--nats <url>', 'use a running NATS server (and its cluster\'s PNodes, unless --pnodes 0)')
  .option('--store <dir>', 'JetStream store of the private nats-server (kept for --resume)', '.dcnr/store')
  .option('--no-auth', 'private nats-server without auth (on by default: docs/threat-model.md)')
  .option('--resume', 'continue the interrupted run stored in KV', false)
  .option('--depth <n>', 'pipeline depth (default: the model\'s; part of the math)', int(0))
  .option('--checkpoint-every <n>', 'messages a VNode applies between checkpoints; 1 = commit every message (default: the model\'s, else 100)', int(1))
  .option('--checkpoint-ms <ms>', 'longest time a VNode keeps applied messages uncheckpointed (default: the model\'s, else 1000)', int(1))
  .option('--ledger', 'keep a ledger of every update, with its inputs, for `dcnr ledger verify` (docs/ledger.md)', false)
  .option('--replicas <r>', `federated rounds (docs/federated.md): R replicas of the model, each fed by its own data owner (a process with one shard); 1..${MAX_REPLICAS}`, int(1))
  .option('--sync-every <h>', 'federated: inner steps per round (--steps must be a multiple)', int(1), 50)
  .option('--outer <kind>', 'federated: outer optimizer, avg (FedAvg, the default: measured better here) | nesterov (DiLoCo)', 'avg')
  .option('--outer-lr <lr>', 'federated: outer learning rate (default: 1 for avg, 0.7 for nesterov)', Number)
  .option('--compress <kind>', 'federated: how updates travel, both ways: none | int8[:BLOCK] | topk:F | powersgd:R', 'none')
  .option('--json', 'print the result as JSON on the last stdout line', false)
  .option('--types <files>', TYPES_HELP)
  .action((opts, cmd: Command) => trainCommand({ ...opts, modelGiven: cmd.getOptionValueSource('model') === 'cli' }));

program
  .command('feed')
  .description("a federated replica's data owner: feed replica R of a deployment from ONE shard file (dcnr train --replicas starts these)")
  .requiredOption('--deployment <name>', 'the federated deployment')
  .requiredOption('--replica <r>', 'which replica (0-based)', int(0))
  .requiredOption('--shard <file>', 'the shard this owner holds (format in docs/federated.md); no other data is read')
  .option('--nats <url>', 'NATS server URL', process.env.DCNR_NATS_URL ?? 'nats://127.0.0.1:4222')
  .option('--json', 'print the result as JSON on the last stdout line', false)
  .action((opts) => feedCommand(opts));

const DEFAULT_NATS = process.env.DCNR_NATS_URL ?? 'nats://127.0.0.1:4222';

program
  .command('up')
  .description('start a local cluster: nats-server, supervisor and N PNodes as processes (Ctrl-C stops all)')
  .option('--pnodes <n>', 'PNode processes', int(1), 3)
  .option('--nats <url>', 'use a running NATS server instead of starting one')
  .option('--store <dir>', 'JetStream store of the private nats-server (wiped at start unless --keep-store)', '.dcnr/cluster')
  .option('--keep-store', 'keep the store from the last run', false)
  .option('--no-auth', 'nats-server without auth (on by default: docs/threat-model.md)')
  .option('--dashboard-port <port>', 'port of the live dashboard (0 = any free port)', int(0), 7070)
  .option('--dashboard-host <host>', 'address the dashboard listens on', '127.0.0.1')
  .option('--no-dashboard', 'do not serve the dashboard')
  .option('--types <files>', TYPES_HELP)
  .action((opts) => upCommand(opts));

program
  .command('supervisor')
  .description('run a supervisor: membership, failure detection, placement, migration (run several: one leads, the others stand by)')
  .option('--nats <url>', 'NATS server URL', DEFAULT_NATS)
  .option('--detect-ms <ms>', 'heartbeat silence after which a PNode is dead', int(100), 1000)
  .option('--placement <name>', 'placement strategy: least-loaded | round-robin', 'least-loaded')
  .option('--dashboard-port <port>', 'also serve the live dashboard on this port (off unless given)', int(0))
  .option('--dashboard-host <host>', 'address the dashboard listens on (0.0.0.0 inside a container)', '127.0.0.1')
  .option('--authority <dir>', 'the network authority (authority.json) its registrar admits and revokes with (env DCNR_AUTHORITY)')
  .option('--registrar-port <port>', 'serve the registrar (PNodes join with `dcnr pnode --join URL`) on this port (0 = any free port)', int(0))
  .option('--registrar-host <host>', 'address the registrar listens on', '127.0.0.1')
  .option('--admission <policy>', 'who the registrar admits: open | allowlist:FILE | pow:BITS', 'open')
  .option('--join-nats <url>', 'the NATS URL the registrar gives joining PNodes (default: --nats)')
  .option('--name <name>', 'this supervisor\'s name, unique among the cluster\'s supervisors (default: supervisor-<host>-<pid>)')
  .option('--lease-ms <ms>', 'leader lease: a standby supervisor takes over after this much silence of the leader', int(300), 1500)
  .option('--drain-risk <r>', 'drain a PNode before it fails once its health risk (0..1, docs/architecture.md) reaches this; "off" never does', riskThreshold, DEFAULT_DRAIN_AT_RISK)
  .option('--audit-share <p>', 'share of each VNode\'s ledger segments another PNode re-executes (0..1, docs/ledger.md; env DCNR_AUDIT_SHARE); 0 = none', share, Number(process.env.DCNR_AUDIT_SHARE ?? DEFAULT_AUDIT_SHARE))
  .action((opts) => supervisorCommand(opts));

program
  .command('pnode')
  .description('run a PNode: a worker process that hosts the VNodes it is assigned')
  .option('--nats <url>', 'NATS server URL', DEFAULT_NATS)
  .option('--name <id>', 'stable PNode id (default pnode-<pid>)')
  .option('--heartbeat-ms <ms>', 'heartbeat period', int(10), 250)
  .option('--hang-ms <ms>', 'heartbeats (sent from their own thread) stop once the main event loop has been held up this long: the PNode is then declared dead', int(1000), DEFAULT_HANG_MS)
  .option('--passivate-ms <ms>', 'a VNode idle this long leaves memory; its next message brings it back', int(100), 300_000)
  .option('--max-vnodes <n>', 'VNodes hosted at most (placement gives it no more; an assignment past it is refused)', int(1), 256)
  .option('--join <url>', 'join a network through its registrar (`dcnr up` prints the URL): admitted, it gets PNode credentials')
  .option('--identity <file>', 'the PNode\'s nkey seed for --join (made on first use)', undefined)
  .option('--types <files>', TYPES_HELP)
  .action((opts, cmd: Command) => pnodeCommand({ ...opts, natsGiven: cmd.getOptionValueSource('nats') === 'cli' || process.env.DCNR_NATS_URL !== undefined }));

program
  .command('auth')
  .description('network credentials for deployments not launched by `dcnr up`')
  .command('init')
  .description('create (or reuse) a network authority in --dir and write the role credentials, optionally the nats-server config')
  .requiredOption('--dir <dir>', 'where the authority and the .creds files go')
  .option('--pnodes <names>', 'comma-separated PNode names to write credentials for', '')
  .option('--server-config <file>', 'also write a nats-server config with auth on')
  .option('--listen <host:port>', 'listen address in that config', '0.0.0.0:4222')
  .option('--jetstream-dir <dir>', 'JetStream store in that config (its jwt/ resolver directory beside)', '/data')
  .option('--json', 'print JSON on the last stdout line', false)
  .action((opts) => authInitCommand(opts));

program
  .command('revoke')
  .description('revoke a PNode admitted by the registrar: its connections close and it cannot reconnect (supervisor credentials)')
  .argument('<pnode>', 'PNode name')
  .option('--nats <url>', 'NATS server URL', DEFAULT_NATS)
  .option('--json', 'print JSON on the last stdout line', false)
  .action((pnode, opts) => revokeCommand(pnode, opts));

program
  .command('generate')
  .description('sample from a trained language model (e.g. names-gpt): same seed, same samples')
  .requiredOption('--deployment <name>', 'the trained deployment (its model spec names the dataset)')
  .option('--nats <url>', 'a running NATS server holding it')
  .option('--store <dir>', 'the store a finished `dcnr train` left (default: .dcnr/store)')
  .option('--count <n>', 'samples', int(1), 20)
  .option('--temperature <t>', 'sampling temperature (0 = most likely token)', (v: string) => Number(v), 1)
  .option('--seed <n>', 'seed of the draws', int(0), 1)
  .option('--prompt <text>', 'text every sample starts with (characters of the vocabulary)')
  .option('--json', 'print JSON on the last stdout line', false)
  .action((opts) => generateCommand(opts));

program
  .command('serve')
  .description('HTTP inference through a deployment\'s VNodes, from a pinned or the latest served version (docs/serving.md)')
  .requiredOption('--deployment <name>', 'the deployment to serve')
  .option('--nats <url>', 'a running cluster holding it')
  .option('--store <dir>', 'the store a finished `dcnr train` left (default: .dcnr/store)')
  .option('--host <host>', 'address to listen on (loopback unless you mean otherwise)', '127.0.0.1')
  .option('--port <n>', 'port (0 = any free one; the URL is printed)', int(0), 8080)
  .option('--version <latest|step>', 'a served version\'s step to pin, or latest (follows new versions)', 'latest')
  .option('--window-ms <n>', 'micro-batching window: how long a batch\'s first request waits for others', int(0))
  .option('--max-batch <n>', 'rows per forward at most (and per request)', int(1))
  .option('--wait <s>', 'wait this long for a first served version (a run that has not reached one yet)', int(0), 0)
  .action((opts) => serveCommand(opts));

program
  .command('export')
  .description('write a trained deployment\'s parameters to a safetensors file (the model spec and paramsHash in its metadata)')
  .requiredOption('--deployment <name>', 'the trained deployment')
  .option('--nats <url>', 'a running NATS server holding it')
  .option('--store <dir>', 'the store a finished `dcnr train` left (default: .dcnr/store)')
  .requiredOption('--out <file>', 'the file to write, e.g. model.safetensors')
  .option('--version <latest|step>', 'the committed state (latest) or a served version\'s step (docs/serving.md)', 'latest')
  .option('--json', 'print JSON on the last stdout line', false)
  .option('--types <files>', TYPES_HELP)
  .action((opts) => exportCommand(opts));

const ledger = program.command('ledger').description('the ledger of every applied update (docs/ledger.md): verify it, or show each PNode\'s contribution');
for (const action of ['verify', 'show'] as const) {
  const cmd = ledger
    .command(action)
    .description(action === 'verify' ? 'check the chain, signatures and stored state, and re-execute a sample of the updates; exit 0 iff verified' : 'per-PNode contributions: updates applied, compute time, input bytes')
    .requiredOption('--deployment <name>', 'a deployment trained with the ledger on')
    .option('--nats <url>', 'a running NATS server holding it')
    .option('--store <dir>', 'the store a finished `dcnr train` left (default: .dcnr/store)');
  if (action === 'verify') cmd.option('--sample <p>', 'share of the updates to re-execute (1 = all)', '0.05');
  cmd
    .option('--json', 'print JSON on the last stdout line', false)
    .option('--types <files>', TYPES_HELP)
    .action((opts) => ledgerCommand(action, opts));
}

program
  .command('status')
  .description('PNodes, their VNodes, health and epochs')
  .option('--nats <url>', 'NATS server URL', DEFAULT_NATS)
  .option('--json', 'print JSON on the last stdout line', false)
  .action((opts) => statusCommand(opts));

program
  .command('scenario')
  .description('fault-injection run on a fresh private cluster, compared with a fault-free run; exit 0 iff every check holds')
  .argument('[name|file]', 'built-in scenario name (see --list) or a scenario file')
  .option('--seed <n>', 'seed (default: the scenario\'s)', int(0))
  .option('--reports <dir>', 'where report.json and loss.svg are written', 'reports')
  .option('--list', 'list the built-in scenarios', false)
  .option('--all', 'run every built-in scenario', false)
  .option('--quick-set', 'run the quick set (what CI runs)', false)
  .option('--checkpoint-every <n>', 'override every scenario model\'s checkpoint interval (1 = commit every message)', int(1))
  .option('--model <name|file>', 'run every scenario on this model instead of its own (e.g. the quick set on names-gpt)')
  .option('--batch <n>', 'override every scenario\'s batch size', int(1))
  .option('--steps <n>', 'override every scenario\'s steps (its faults must still fire before the end)', int(1))
  .option('--no-ledger', 'keep no ledger (on by default: the faulted run\'s ledger is verified, every update re-executed)')
  .option('--no-auth', 'scenario clusters without auth (on by default)')
  .option('--json', 'print the report as JSON on the last stdout line', false)
  .option('--types <files>', TYPES_HELP)
  .action((name, opts) => scenarioCommand(name, opts));

program
  .command('bench')
  .description('benchmarks side by side in one run: kernels, hop, train, lm, serve, ledger, recovery, memory, scale')
  .option('--quick', 'fewer sizes, steps and repetitions (under 3 minutes)', false)
  .option('--only <names>', 'comma-separated subset: kernels,hop,train,lm,serve,ledger,recovery,memory,scale')
  .option('--results <dir>', 'where the result JSON is saved', 'results')
  .option('--json', 'print the result as JSON on the last stdout line', false)
  .action((opts) => benchCommand(opts));

program
  .command('drain')
  .description('move every VNode off a PNode (nothing lost), e.g. before shutting it down')
  .argument('<pnode>', 'PNode id')
  .option('--nats <url>', 'NATS server URL', DEFAULT_NATS)
  .option('--json', 'print JSON on the last stdout line', false)
  .action((pnode, opts) => drainCommand(pnode, opts));

// DCNR_DRY_RUN=1: parse and validate the arguments, print what would run, run nothing.
// (The docker-compose test checks every service's command this way.)
if (process.env.DCNR_DRY_RUN === '1') {
  program.hook('preAction', (_program, action) => {
    process.stdout.write(`${JSON.stringify({ command: action.name(), args: action.args, options: action.opts() })}\n`);
    process.exit(0);
  });
}

await program.parseAsync(process.argv);
