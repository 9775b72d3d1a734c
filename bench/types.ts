/**
 * One benchmark = one file in bench/ exporting a {@link Benchmark}; `dcnr bench`
 * runs them in order and assembles one result object (bench/result.ts).
 * Every benchmark measures its baseline right beside its subject, in the same run,
 * because on a shared machine only ratios measured together are honest.
 */
export interface BenchContext {
  /** `--quick`: fewer sizes, steps and repetitions (the whole run under 3 minutes). */
  quick: boolean;
  /** A progress line (stderr). */
  progress(line: string): void;
  /** A scratch directory for stores and files; removed after the run. */
  workDir: string;
}

export interface Benchmark<R> {
  name: string;
  /** One line for `dcnr bench --list` and the table header. */
  description: string;
  run(ctx: BenchContext): Promise<R>;
}
