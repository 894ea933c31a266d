/**
 * One download's abort controller and stall timer: `fail` records the first reason and aborts;
 * `arm` restarts the stall clock (on every chunk); `clear` stops the clock and aborts what is left.
 */
export class DownloadGuard {
  readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private failure: Error | undefined;

  constructor(
    private readonly stallTimeoutMs: number,
    private readonly stallMessage: string,
  ) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get ownFailure(): Error | undefined {
    return this.failure;
  }

  readonly fail = (e: Error): void => {
    this.failure ??= e;
    this.controller.abort(e);
  };

  readonly arm = (): void => {
    // Called for every chunk (thousands per GiB): restart the one timer rather than make another.
    if (this.timer) this.timer.refresh();
    else this.timer = setTimeout(() => this.fail(new Error(this.stallMessage)), this.stallTimeoutMs);
  };

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.controller.abort();
  }
}
