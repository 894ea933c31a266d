/** One figure of `npm run bench`, beside the baseline it is judged against (measured in the same run). */
export interface BenchRow {
  /** Which benchmark (1–6 of issue 6). */
  bench: string;
  /** What was measured, e.g. "copy 1024 MiB". */
  name: string;
  value: string;
  baseline?: string;
  /** value / baseline, when both are numbers of the same kind. */
  ratio?: number;
  goal?: string;
  /** undefined: no goal applies. */
  pass?: boolean;
}

export type Log = (line: string) => void;
