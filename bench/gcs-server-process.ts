/**
 * The Cloud Storage stand-in in a process of its own for the copy benchmark, so its hashing does
 * not share an event loop with the source server. Prints `{ endpoint }` once listening; stops on SIGTERM.
 */
import { startGcsServer } from '../local-stack/gcs-server';

async function main(): Promise<void> {
  const gcs = await startGcsServer();
  process.stdout.write(`${JSON.stringify({ endpoint: gcs.endpoint })}\n`);
  process.once('SIGTERM', () => {
    void gcs.stop().finally(() => process.exit(0));
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
