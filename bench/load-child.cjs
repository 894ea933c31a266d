/**
 * The load tool of the API benchmark, in a process of its own: autocannon against one URL, with
 * `connections` callers at once. Reads a JSON job from the file named by argv[2] (too long for
 * an argument once it holds hundreds of requests): `{ url, connections, duration?,
 * amount?, requests: [{ method, path, headers?, body? }] }`; each request sent takes the next of
 * `requests` in turn (so POSTs can each start a different export). Prints one JSON line:
 * `{ p50, p90, p99, max, rps, sent, s2xx, s4xx, s5xx, errors, timeouts }` (latencies in ms).
 */
const { readFileSync } = require('node:fs');
const autocannon = require('autocannon');

const job = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8'));
let next = 0;
const instance = autocannon(
  {
    url: job.url,
    connections: job.connections,
    ...(job.amount ? { amount: job.amount } : { duration: job.duration ?? 10 }),
    timeout: 30,
    requests: [{ setupRequest: (req) => ({ ...req, ...job.requests[next++ % job.requests.length] }) }],
  },
  (err, r) => {
    if (err) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    const out = {
      p50: r.latency.p50,
      p90: r.latency.p90,
      p99: r.latency.p99,
      max: r.latency.max,
      rps: r.requests.average,
      sent: r.requests.sent,
      s2xx: r['2xx'],
      s4xx: r['4xx'],
      s5xx: r['5xx'],
      errors: r.errors,
      timeouts: r.timeouts,
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  },
);
process.once('SIGTERM', () => instance.stop());
