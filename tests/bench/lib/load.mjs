// Load for the benchmarks: wrk (one thread) for request/response runs, a keep-alive Node client
// for streams, and percentiles.
import { execFile, execFileSync } from 'node:child_process';
import http from 'node:http';
import { join } from 'node:path';
import { ROOT } from '../../e2e/harness.mjs';

const WRK_LUA = join(ROOT, 'tests/bench/wrk.lua');
// The request body wrk sends (a file) and the streaming body: set once by the run.
const bodies = { file: null, stream: null };
export function useBodies(file, stream) {
  bodies.file = file;
  bodies.stream = stream;
}

export function wrkVersion() {
  try { execFileSync('wrk', ['-v'], { encoding: 'utf8' }); } catch (e) { return String(e.stdout).split('\n')[0].replace(/ \[.*/, ''); }
  return 'wrk';
}
export function wrk(url, headers, conns, seconds, method = 'POST') {
  const env = {
    ...process.env,
    BENCH_BODY_FILE: bodies.file,
    BENCH_METHOD: method,
    BENCH_HEADERS: Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\n'),
  };
  const args = ['-t1', `-c${conns}`, `-d${seconds}s`, '--timeout', '10s', '-s', WRK_LUA, url];
  return new Promise((ok, fail) => {
    execFile('wrk', args, { env, timeout: (seconds + 30) * 1000, encoding: 'utf8' }, (err, stdout, stderr) => {
      const m = stdout.match(/BENCH_JSON (.*)/);
      if (!m) return fail(new Error(`wrk: ${err?.message ?? ''} ${stdout} ${stderr}`));
      const r = JSON.parse(m[1]);
      const ms = (us) => us / 1000;
      ok({ requests: r.requests, rps: r.requests / (r.duration_us / 1e6), p50: ms(r.p50), p90: ms(r.p90), p99: ms(r.p99),
        max: ms(r.max), non2xx: r.non2xx, socketErrors: r.socket_errors });
    });
  });
}

/** Streaming requests one at a time: time to the first body byte and to the end of the stream. */
export async function streams(url, headers, seconds, max) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const ttfb = [];
  const total = [];
  let failures = 0;
  let firstFailure;
  const deadline = performance.now() + seconds * 1000;
  while (performance.now() < deadline && ttfb.length + failures < max) {
    const r = await new Promise((ok) => {
      const t0 = performance.now();
      let t1;
      const req = http.request(url, {
        method: 'POST', agent,
        headers: { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(bodies.stream) },
      }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { if (t1 === undefined) t1 = performance.now(); text += d; });
        res.on('end', () => ok({ status: res.statusCode, ttfb: t1 - t0, total: performance.now() - t0,
          ok: res.statusCode === 200 && text.includes('[DONE]') && text.includes('Benchmarks'), text }));
        res.on('error', (e) => ok({ error: e.message }));
      });
      req.on('error', (e) => ok({ error: e.message }));
      req.setTimeout(10_000, () => req.destroy(new Error('timeout after 10 s')));
      req.end(bodies.stream);
    });
    if (r.ok) { ttfb.push(r.ttfb); total.push(r.total); } else {
      failures += 1;
      firstFailure ??= r.error ?? `HTTP ${r.status}: ${r.text.slice(0, 160).replace(/\s+/g, ' ')}`;
      if (failures >= 5 && ttfb.length === 0) break;
    }
  }
  agent.destroy();
  return { n: ttfb.length, ttfbP50: pct(ttfb, 50), ttfbP99: pct(ttfb, 99), totalP50: pct(total, 50), failures, firstFailure };
}
export function pct(xs, p) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
