// Processes for the benchmarks: free ports, long-running children in their own process groups,
// the run's cleanup, one HTTP request, and the CPU time of a process tree (from /proc).
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import { ROOT } from '../../e2e/harness.mjs';

export const log = (...a) => console.error('[bench]', ...a);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = [];
/** Folders removed when the process exits. */
export const cleanupDirs = [];

// A port is free when asked for, and this run hands each out once: the kernel may offer a port
// it just released again, and two of one runtime's sockets on it failed the run at startup
// (ERR_ADDRESS_IN_USE, once).
const portsHandedOut = new Set();
export async function freePort() {
  for (;;) {
    const port = await new Promise((ok, fail) => {
      const srv = createServer();
      srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => ok(port)); });
      srv.on('error', fail);
    });
    if (!portsHandedOut.has(port)) {
      portsHandedOut.add(port);
      return port;
    }
  }
}

/** Spawns a long-running child in its own process group; resolves when `ready()` passes. */
export async function launch(name, cmd, args, { env = process.env, ready, timeoutMs = 120_000, cwd = ROOT } = {}) {
  const proc = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const out = [];
  proc.stdout.on('data', (d) => { out.push(d.toString()); if (out.length > 200) out.shift(); });
  proc.stderr.on('data', (d) => { out.push(d.toString()); if (out.length > 200) out.shift(); });
  const child = { name, proc, out, stop: () => stopChild(child) };
  children.push(child);
  const deadline = Date.now() + timeoutMs;
  let lastErr = '';
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`${name} exited (${proc.exitCode ?? proc.signalCode}): ${out.join('').slice(-600)}`);
    }
    try { if (await ready(out.join(''))) return child; } catch (e) { lastErr = e.message; }
    await sleep(200);
  }
  await stopChild(child);
  throw new Error(`${name} not ready in ${timeoutMs / 1000} s ${lastErr}: ${out.join('').slice(-600)}`);
}

export async function stopChild(child) {
  const { proc } = child;
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  try { process.kill(-proc.pid, 'SIGTERM'); } catch { /* gone */ }
  const t = setTimeout(() => { try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ } }, 3000);
  await exited;
  clearTimeout(t);
}

function cleanupSync() {
  for (const c of children) {
    if (c.proc.exitCode === null && c.proc.signalCode === null) {
      try { process.kill(-c.proc.pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
  for (const d of cleanupDirs) rmSync(d, { recursive: true, force: true });
}
process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

/** One HTTP request; resolves to {status, headers, text}. */
export function request(url, { method = 'POST', headers = {}, body } = {}) {
  return new Promise((ok, fail) => {
    const req = http.request(url, { method, headers: body ? { 'content-type': 'application/json', ...headers } : headers }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => ok({ status: res.statusCode, headers: res.headers, text: Buffer.concat(parts).toString('utf8') }));
    });
    req.on('error', fail);
    req.setTimeout(15_000, () => req.destroy(new Error('timeout after 15 s')));
    req.end(body);
  });
}

// ---- CPU accounting: user+system time of a process tree, from /proc ----
const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
export function procTree(root) {
  const kids = new Map();
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const st = readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
      if (!kids.has(ppid)) kids.set(ppid, []);
      kids.get(ppid).push(Number(p));
    } catch { /* gone */ }
  }
  const all = [];
  const walk = (pid) => { all.push(pid); for (const k of kids.get(pid) ?? []) walk(k); };
  for (const r of [].concat(root)) walk(r);
  return all;
}
export function cpuMs(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').slice(0).split(') ')[1].split(' ');
      ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
    } catch { /* gone */ }
  }
  return ticks * TICK_MS;
}
