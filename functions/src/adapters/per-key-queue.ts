/**
 * Runs one task at a time per key within this instance. Transactions on one hot document (a
 * user's admission ledger) then queue here instead of in Firestore, where many at once wait on
 * each other's locks until some fail with ABORTED. Correctness does not rest on it: the
 * transaction still decides, across instances too.
 */
export class PerKeyQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(task, task);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}
