/**
 * Output conventions of every `dcnr` command: human text to stderr (progress bars,
 * tables), and with `--json` the LAST line of stdout is one JSON object.
 */
import cliProgress from 'cli-progress';

/** Print the result: JSON as the last stdout line, or a readable summary. */
export function printResult(result: Record<string, unknown>, json: boolean, human: () => string): void {
  if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else process.stdout.write(`${human()}\n`);
}

/** A progress display: a bar on a TTY, a line every 10% otherwise (CI logs stay short). */
export function createProgress(total: number, label: string) {
  const tty = process.stderr.isTTY === true;
  const bar = tty
    ? new cliProgress.SingleBar(
        { format: `${label} [{bar}] {value}/{total} steps | loss {loss} | {rate} steps/s | eta {eta}s`, stream: process.stderr, hideCursor: true },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const started = Date.now();
  let lastDecile = -1;
  bar?.start(total, 0, { loss: '-', rate: '-' });
  return {
    update(done: number, loss: number | undefined) {
      const rate = (done / Math.max((Date.now() - started) / 1000, 1e-3)).toFixed(1);
      const lossText = loss === undefined ? '-' : loss.toFixed(4);
      if (bar) bar.update(done, { loss: lossText, rate });
      else {
        const decile = Math.floor((done / total) * 10);
        if (decile > lastDecile) {
          lastDecile = decile;
          process.stderr.write(`${label}: ${done}/${total} steps, loss ${lossText}, ${rate} steps/s\n`);
        }
      }
    },
    stop() {
      bar?.stop();
    },
  };
}

/** Exit with a one-line error (no stack) for a user mistake. */
export function fail(message: string, code = 2): never {
  process.stderr.write(`dcnr: ${message}\n`);
  process.exit(code);
}
