// The markdown the gateway benchmark prints: the gateways' table and notes, ratios, the A/B, the
// phase rows, cold starts and the profile. Pure: it formats what the run measured.
import { cpus } from 'node:os';
import { wrkVersion } from './load.mjs';
import { SAMPLE_US } from './profile.mjs';

/**
 * `run`: what was measured (results, unavailable, phases, phasesNote, abRows, coldRows,
 * profileRows, versions) and how (bodyBytes, CONC, SECONDS, WARMUP, STREAM_MAX, AB_ROUNDS,
 * AB_SECONDS, BASELINE, COLD_TRIALS).
 */
export function report(run) {
  const { results, unavailable, phases, phasesNote, abRows, coldRows, profileRows, versions } = run;
  const { bodyBytes, CONC, SECONDS, WARMUP, STREAM_MAX, AB_ROUNDS, AB_SECONDS, BASELINE, COLD_TRIALS } = run;
  const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
  const byKey = (k) => results.find((r) => r.name.toLowerCase().startsWith(k) && !r.name.includes('bare'));
  const direct = byKey('direct');
  const pass = byKey('pass-through');
  const asc = results.find((r) => r.name === 'ASC Worker (workerd)');
  const added = (r) => (r && direct ? r.c1.p50 - direct.c1.p50 : NaN);
  const lines = [];
  const say = (s = '') => lines.push(s);
  say(`Targets measured one after the other against one upstream (\`tests/bench/upstream.mjs\`, canned answers) with one ` +
    `request body (${bodyBytes} bytes). Latency at concurrency 1 and throughput at concurrency ${CONC}: ` +
    `wrk, one thread, ${SECONDS} s each after a ${WARMUP} s warm-up. Streams: \`"stream": true\`, one at a time for ` +
    `${SECONDS} s (at most ${STREAM_MAX}); TTFB is the time to the first body byte, the upstream sends its first chunk at once and the ` +
    `rest ${process.env.STREAM_GAP_MS ?? 10} ms later (a gateway that buffers shows it). CPU ms/req: user + system time of the ` +
    `target's process tree during the concurrency-${CONC} run, divided by its requests (for the workerd rows that includes ` +
    `the Durable Objects and the local KV/R2 simulators in the same process).`);
  say();
  say(`| target | c=1 p50 ms | c=1 p90 ms | c=1 p99 ms | added p50 ms | c=${CONC} req/s | c=${CONC} p99 ms | CPU ms/req | stream TTFB p50 ms | stream TTFB p99 ms | errors |`);
  say('|---|---|---|---|---|---|---|---|---|---|---|');
  const notes = [];
  const footnote = (text) => { notes.push(text); return `[${notes.length}]`; };
  for (const r of results) {
    const errs = r.c1.non2xx + r.c1.socketErrors + r.cN.non2xx + r.cN.socketErrors;
    const s = r.stream;
    const streamCell = s.n ? [f(s.ttfbP50), f(s.ttfbP99)] : [`failed ${footnote(`${r.name}, streaming: ${s.firstFailure}`)}`, 'n/a'];
    const streamErr = s.n && s.failures ? ` + ${s.failures} streams ${footnote(`${r.name}, streaming: ${s.firstFailure}`)}` : '';
    say(`| ${r.name} | ${f(r.c1.p50, 3)} | ${f(r.c1.p90, 3)} | ${f(r.c1.p99, 3)} | ${r === direct ? '0' : f(added(r), 3)} | ` +
      `${f(r.cN.rps, 0)} | ${f(r.cN.p99)} | ${f(r.cpuPerReq, 3)} | ${streamCell[0]} | ${streamCell[1]} | ${errs}${streamErr} |`);
  }
  for (const u of unavailable) say(`| ${u.name} | unavailable ${footnote(`${u.name}: ${u.why}`)} | | | | | | | | | |`);
  say();
  for (const r of results) if (r.note) say(`- ${r.name}: ${r.note}.`);
  for (const [i, n] of notes.entries()) say(`- [${i + 1}] ${n.replace(/\|/g, '/')}`);
  say();
  say('"added p50" = the target\'s c=1 p50 minus the direct p50 (what the hop through the target costs).');
  say();
  for (const a of [asc, results.find((r) => r.name === 'ASC Worker, leased admission (workerd)')].filter(Boolean)) {
    say(`Ratios (${a.name} against each):`);
    say();
    say('| against | added p50 ratio (ASC / it) | c=1 p50 ratio | throughput ratio (ASC / it) | CPU/req ratio | stream TTFB p50 ratio |');
    say('|---|---|---|---|---|---|');
    for (const r of results) {
      if (r === a || r === direct || r === asc || r.name.startsWith('ASC Worker, leased')) continue;
      say(`| ${r.name} | ${f(added(a) / added(r))} | ${f(a.c1.p50 / r.c1.p50)} | ${f(a.cN.rps / r.cN.rps)} | ` +
        `${f(a.cpuPerReq / r.cpuPerReq)} | ${f(a.stream.ttfbP50 / r.stream.ttfbP50)} |`);
    }
    say();
  }
  if (asc) say('Below 1 is better for ASC in every column but throughput, where above 1 is better.');
  if (abRows.length) {
    const label = process.env.ASC_BASELINE_LABEL ?? BASELINE;
    say();
    say(`Interleaved A/B: the baseline build (${label}) as A and this build as B, ${AB_ROUNDS} rounds of A B B A, ` +
      `${AB_SECONDS} s each at c=${CONC} after a 1 s warm-up, then ${AB_SECONDS} s at c=1 for the p50 (whole-request ` +
      'latency, the upstream included); each round\'s ratio is B\'s mean over A\'s, the table gives the median round and ' +
      'the spread of the rounds.');
    say();
    say(`| tenant | A req/s | B req/s | throughput B/A (min-max) | A CPU ms/req | B CPU ms/req | CPU B/A (min-max) | A c=1 p50 ms | B c=1 p50 ms | p50 B/A (min-max) | errors |`);
    say('|---|---|---|---|---|---|---|---|---|---|---|');
    for (const r of abRows) {
      say(`| ${r.tenant} | ${f(r.aRps, 0)} | ${f(r.bRps, 0)} | ${f(r.rps, 3)} (${f(r.rpsMin, 3)}-${f(r.rpsMax, 3)}) | ` +
        `${f(r.aCpu, 3)} | ${f(r.bCpu, 3)} | ${f(r.cpu, 3)} (${f(r.cpuMin, 3)}-${f(r.cpuMax, 3)}) | ` +
        `${f(r.aP50, 3)} | ${f(r.bP50, 3)} | ${f(r.p50, 3)} (${f(r.p50Min, 3)}-${f(r.p50Max, 3)}) | ${r.errors} |`);
    }
  }
  if (phases.length) {
    say();
    say('### Where the time goes (ASC, concurrency 1)');
    say();
    say('The same workerd, request by request, with tenant features taken away. Audit cannot be switched off per tenant: ' +
      '`GET /v1/models` (key auth + one audit record, no upstream) against `GET /healthz` (nothing) shows its cost.');
    say();
    say(`| case | p50 ms | p90 ms | p99 ms | CPU ms/req | p50 over the pass-through ms | c=${CONC} req/s |`);
    say('|---|---|---|---|---|---|---|');
    const base = phases[0].p50;
    for (const p of phases) {
      if (p.error) { say(`| ${p.name} | failed: ${p.error.replace(/\|/g, '/').slice(0, 120)} | | | | | |`); continue; }
      say(`| ${p.name} | ${f(p.p50, 3)} | ${f(p.p90, 3)} | ${f(p.p99, 3)} | ${f(p.cpuPerReq, 3)} | ${f(p.p50 - base, 3)} | ${p.rps16 === undefined ? '' : Math.round(p.rps16)} |`);
    }
    for (const n of phasesNote) { say(); say(n); }
    if (asc && pass) {
      const ratio = added(asc) / added(pass);
      say();
      say(`ASC's added p50 is ${f(ratio, 1)}x the pass-through Worker's own added p50 ` +
        `(${ratio > 2 ? 'over the 2x line: see the analysis below' : 'within 2x'}).`);
    }
  }
  if (coldRows.length) {
    say();
    say('### Cold start: a fresh runtime and its first requests');
    say();
    say(`Each trial starts a new workerd (Miniflare, state in a new folder on tmpfs), times each step from the client, and stops it; ${COLD_TRIALS} trials, ` +
      'the pass-through Worker and ASC alternately. A first request pays what later ones find ready: for ASC, reading and validating the ' +
      'tenant\'s config and key, compiling its guardrails, and starting its ledger object (the steady-state rows above are warm). ' +
      'In production the runtime start is Cloudflare\'s isolate start, which it overlaps with the TLS handshake.');
    say();
    say('| step | median ms | min-max ms |');
    say('|---|---|---|');
    for (const r of coldRows) {
      if (r.error) { say(`| failed: ${r.error.replace(/\|/g, '/').slice(0, 200)} | | |`); continue; }
      say(`| ${r.step} | ${f(r.median, 1)} | ${f(r.min, 1)}-${f(r.max, 1)} |`);
    }
  }
  if (profileRows.length) {
    say();
    say('### CPU profile of ASC\'s isolate');
    say();
    if (profileRows[0].error) say(`Profile failed: ${profileRows[0].error}`);
    else {
      const isolate = (process.env.BENCH_PROFILE_WORKER ?? 'asc') === 'asc'
        ? 'ASC\'s request plane (its Durable Objects run in the control plane\'s Worker, not profiled here)'
        : 'ASC\'s control plane (the Durable Objects: tenant ledgers, audit sequencers, circuit boards; not the request plane)';
      say(`V8 sampling profile (${SAMPLE_US} us; each sample counts as one interval) of the isolate that runs ${isolate}, ${profileRows.requests} ` +
        `requests at concurrency ${process.env.BENCH_PROFILE_CONCURRENCY ?? 1} for the ${process.env.BENCH_PROFILE_TENANT ?? 'full'} tenant, with the inspector attached (slower than the runs above). ` +
        'Self time of a glue function includes the native work of the platform call it makes (e.g. `releaseLock`). ' +
        `Sampled time per request: ${f(profileRows.totalMsPerReq, 3)} ms (idle included as "(idle)"; time the isolate's thread spent in another isolate is not sampled).`);
      say();
      say('| where | ms/req | share |');
      say('|---|---|---|');
      for (const r of profileRows.categories) say(`| ${r.name} | ${f(r.ms, 3)} | ${f(r.share * 100, 1)}% |`);
      say();
      say('| function (top 20 by self time) | self ms/req | share |');
      say('|---|---|---|');
      for (const r of profileRows) say(`| \`${r.name.replace(/\|/g, '/').slice(0, 140)}\` | ${f(r.ms, 3)} | ${f(r.share * 100, 1)}% |`);
    }
  }
  say();
  say(`Versions: workerd ${versions.workerd ?? 'n/a'} (via Miniflare ${versions.miniflare ?? 'n/a'}), ` +
    `Portkey ${versions.portkey ?? 'n/a'}, LiteLLM ${versions.litellm ?? 'n/a'}, ` +
    `${versions.spin ?? 'Spin n/a'}, ${wrkVersion()}, Node ${process.versions.node}, ` +
    `CPU ${cpus()[0].model} x ${cpus().length}.`);
  return lines.join('\n');
}
