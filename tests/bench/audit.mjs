// Records/s through one audit sequencer Durable Object on local workerd (wrangler dev --local):
// GET /v1/models appends exactly one record per request (no upstream call), measured beside
// GET /healthz (no audit) on the same isolate. Bounded: N requests each.
import { startStack } from '../e2e/harness.mjs';

const N = Number(process.env.BENCH_REQUESTS ?? 2000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);

async function run(url, headers) {
  let next = 0;
  let failures = 0;
  const started = performance.now();
  async function worker() {
    while (next < N) {
      next += 1;
      const r = await fetch(url, { headers });
      await r.arrayBuffer();
      if (r.status !== 200) failures += 1;
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { rps: N / ((performance.now() - started) / 1000), failures };
}

const stack = await startStack();
try {
  const auth = { authorization: `Bearer ${stack.keys.demo.key}` };
  await run(`${stack.url}/healthz`, {});
  const health = await run(`${stack.url}/healthz`, {});
  const models = await run(`${stack.url}/v1/models`, auth);
  console.log('| route | req/s | audit records/s | failures |');
  console.log('|---|---|---|---|');
  console.log(`| GET /healthz (no audit) | ${health.rps.toFixed(1)} | 0 | ${health.failures} |`);
  console.log(`| GET /v1/models (1 record each) | ${models.rps.toFixed(1)} | ${models.rps.toFixed(1)} | ${models.failures} |`);
  console.log(`\n(N=${N}, concurrency=${CONCURRENCY}, one region stream, through wrangler dev --local)`);
} finally {
  await stack.stop();
}
