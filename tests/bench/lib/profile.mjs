// V8 CPU profiles of the runtime's isolates through Miniflare's inspector proxy.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../e2e/harness.mjs';
import { cpuMs, log, request } from './proc.mjs';
import { wrk } from './load.mjs';

// The profile's sampling interval, in microseconds.
export const SAMPLE_US = 200;

/** An inspector session on one isolate: `call(method, params)` and `close()`. */
export async function inspect(target) {
  // Miniflare's inspector proxy wants an Origin it knows (Node's built-in WebSocket sends none).
  const { default: WS } = await import('ws');
  const ws = new WS(target.webSocketDebuggerUrl, { headers: { origin: 'http://localhost' } });
  const timeout = (ms, what) => new Promise((_, fail) => setTimeout(() => fail(new Error(`inspector: ${what} timed out`)), ms).unref());
  await Promise.race([
    new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = () => fail(new Error('inspector: no connection')); }),
    timeout(10_000, 'connect'),
  ]);
  let id = 0;
  const pending = new Map();
  ws.onmessage = (m) => {
    const text = String(m.data);
    if (process.env.BENCH_DEBUG) log('inspector:', text.slice(0, 200));
    const msg = JSON.parse(text);
    if (msg.id && pending.has(msg.id)) { pending.get(msg.id)(msg); pending.delete(msg.id); }
  };
  const call = (method, params = {}) => Promise.race([new Promise((ok, fail) => {
    id += 1;
    pending.set(id, (msg) => (msg.error ? fail(new Error(`${method}: ${msg.error.message}`)) : ok(msg.result)));
    ws.send(JSON.stringify({ id, method, params }));
  }), timeout(30_000, method)]);
  return { call, close: () => ws.close() };
}

/** Sampled non-idle time of a profile, in microseconds. */
const busyUs = (profile) => {
  const idle = new Set(profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
  return profile.samples.filter((id) => !idle.has(id)).length * SAMPLE_US;
};

/**
 * A sampling CPU profile of one of the runtime's isolates (BENCH_PROFILE_WORKER, 'asc' by default)
 * through Miniflare's inspector proxy on `inspectorPort`, while wrk loads `url` for `seconds`;
 * `workerd` holds the runtime's pids (its CPU time is logged beside the isolates' busy time).
 */
export async function profileAsc({ inspectorPort, workerd, url, headers, seconds }) {
  const targets = JSON.parse((await request(`http://127.0.0.1:${inspectorPort}/json`, { method: 'GET' })).text);
  if (process.env.BENCH_DEBUG) log('inspector targets:', JSON.stringify(targets));
  // BENCH_PROFILE_WORKER=asc-control profiles the control plane's isolate (the Durable Objects).
  const workerName = process.env.BENCH_PROFILE_WORKER ?? 'asc';
  const target = targets.find((t) => t.webSocketDebuggerUrl.endsWith(`/${workerName}`));
  if (!target) throw new Error(`inspector: no target for the ${workerName} Worker`);
  // BENCH_PROFILE_ALL=1 samples every other isolate of the runtime too (Miniflare's own Workers:
  // the KV and R2 simulators, the outbound hop...) and logs each one's busy time per request.
  const others = process.env.BENCH_PROFILE_ALL === '1' ? targets.filter((t) => t !== target) : [];
  const sessions = await Promise.all([target, ...others].map(async (t) => ({ t, s: await inspect(t) })));
  for (const { s } of sessions) {
    await s.call('Profiler.enable');
    await s.call('Profiler.setSamplingInterval', { interval: SAMPLE_US });
    await s.call('Profiler.start');
  }
  const cpuBefore = cpuMs(workerd);
  const load = await wrk(url, headers, Number(process.env.BENCH_PROFILE_CONCURRENCY ?? 1), seconds);
  const cpuPerReq = (cpuMs(workerd) - cpuBefore) / load.requests;
  const profiles = [];
  for (const { t, s } of sessions) {
    profiles.push({ t, profile: (await s.call('Profiler.stop')).profile });
    s.close();
  }
  if (others.length) log(`workerd process: ${cpuPerReq.toFixed(4)} ms/req CPU, profiled`);
  for (const { t, profile } of profiles) {
    log(`isolate ${t.webSocketDebuggerUrl.split('/').pop()}: ${(busyUs(profile) / 1000 / load.requests).toFixed(4)} ms/req busy`);
  }
  const { profile } = profiles[0];
  // Kept for a closer look (Chrome DevTools, or inclusive times by function).
  mkdirSync(join(ROOT, '.state/bench'), { recursive: true });
  writeFileSync(join(ROOT, '.state/bench/asc.cpuprofile'), JSON.stringify(profile));
  // Self time per function: samples x interval, grouped by name (+ where it lives). Not the
  // time to the next sample: the isolate is not sampled while its thread runs another isolate
  // (the control plane's objects share a thread with the request plane), and the sample before
  // such a gap would be charged all of it (up to 160 ms seen).
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const cats = new Map();
  profile.samples.forEach((nodeId) => {
    const n = byId.get(nodeId);
    const cf = n.callFrame;
    const isWasm = /wasm/.test(cf.url);
    const where = isWasm ? 'wasm' : cf.url ? cf.url.split('/').pop() : '';
    const name = `${cf.functionName || '(anonymous)'}${where ? ` [${where}]` : ''}`;
    const us = SAMPLE_US;
    self.set(name, (self.get(name) ?? 0) + us);
    const cat = /^\((idle|program|garbage collector)\)$/.test(cf.functionName) ? cf.functionName
      : isWasm ? 'ASC\'s Rust code (wasm)'
        : where === 'index.js' ? 'wasm-bindgen / worker-build JS glue (index.js)'
          : !cf.url ? 'platform APIs and builtins (fetch, Request, Response, streams, storage...)' : `other JS (${where})`;
    cats.set(cat, (cats.get(cat) ?? 0) + us);
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 20)
    .map(([name, us]) => ({ name, ms: us / 1000 / load.requests, share: us / total }));
  rows.categories = [...cats.entries()].sort((a, b) => b[1] - a[1])
    .map(([name, us]) => ({ name, ms: us / 1000 / load.requests, share: us / total }));
  rows.requests = load.requests;
  rows.totalMsPerReq = total / 1000 / load.requests;
  return rows;
}
