/**
 * `dcnr` — the command line of the Distributed Composable Neural Runtime.
 * Every command's `--json` output is one JSON object on the last stdout line.
 */
import { Command, InvalidArgumentError } from 'commander';
import { trainCommand } from './train.js';

const int = (min: number) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}, got ${JSON.stringify(value)}`);
  return n;
};

const program = new Command()
  .name('dcnr')
  .description('Distributed Composable Neural Runtime: durable VNode actors on NATS JetStream')
  .showHelpAfterError();

program
  .command('train')
  .description('deploy a model and train it on the bundled MNIST digits')
  .option('--model <name|file>', 'built-in model name or a JSON model spec file', 'mnist-mlp')
  .option('--steps <n>', 'training steps (micro-batches)', int(1), 600)
  .option('--batch <n>', 'rows per micro-batch', int(1), 64)
  .option('--seed <n>', 'seed for init and batch order', int(0), 1)
  .option('--pnodes <n>', '0 = host every VNode in this process', int(0), 0)
  .option('--nats <url>', 'use a running NATS server instead of starting a private one')
  .option('--store <dir>', 'JetStream store of the private nats-server (kept for --resume)', '.dcnr/store')
  .option('--resume', 'continue the interrupted run stored in KV', false)
  .option('--json', 'print the result as JSON on the last stdout line', false)
  .action((opts) => trainCommand(opts));

await program.parseAsync(process.argv);
