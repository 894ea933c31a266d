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

/** One leg of the copy benchmark, run by bench/copy-child.cjs in a process of its own. */
export interface CopyJob {
  mode: 'copy' | 'pipe' | 'parts' | 'part' | 'download' | 'upload' | 'upload-single' | 'naive';
  url: string;
  sourceHost: string;
  endpoint: string;
  bucket: string;
  object: string;
  size: number;
  parts?: number;
  /** 'part': which range. */
  part?: number;
}

export interface CopyLegResult {
  ms: number;
  /** CPU time of the process (user + system) during the leg. */
  cpuMs: number;
  /** CPU time the archive's server and the Cloud Storage stand-in spent during the leg (set by the parent). */
  serversCpuMs?: number;
  startRssMiB: number;
  peakRssMiB: number;
}
