// The platform calls the Rust adapter makes, as few and as coarse as possible: each function is
// one crossing of the JS boundary, and values cross flat (strings joined by NUL, bytes as one
// Uint8Array) rather than as many small JS objects. JSON produced by Rust is passed through as
// text and never parsed here, so 64-bit integers in it stay exact.

import { createHash } from 'node:crypto';

export const NUL = '\u0000';

// --- Awaiting promises from Rust (src/wait.rs) -------------------------------------------------

/**
 * Reports `promise`'s outcome to the Rust future waiting in slot `id`, through the wasm module's
 * `asc_settled`, which boot.js puts on the global, a new function for each instance
 * (wasm-bindgen bundles its own copy of this file, so a variable set through boot.js's import of
 * it would not be this copy's). An outcome that arrives after a restart is dropped: its slot id
 * may belong to another future of the new instance.
 */
export function awaitInto(promise, id) {
  const settled = globalThis.__ascSettled;
  // Fail the request rather than leave its future waiting for ever.
  if (typeof settled !== 'function') throw new Error('asc: boot.js did not install __ascSettled');
  promise.then(
    (value) => { if (settled === globalThis.__ascSettled) settled(id, value, true); },
    (error) => { if (settled === globalThis.__ascSettled) settled(id, error, false); },
  );
}

// --- Digests ----------------------------------------------------------------------------------

/**
 * SHA-256 of `bytes` (a view of wasm memory, not a copy) into `out` (32 bytes): workerd's native
 * digest, ~10x faster than SHA-256 compiled to wasm (needs the `nodejs_compat` flag).
 */
export function sha256Into(bytes, out) {
  out.set(createHash('sha256').update(bytes).digest());
}

// --- Request and response heads -----------------------------------------------------------

/** A Headers from `name NUL value ...`. */
export function headers(flat) {
  const h = new Headers();
  if (flat.length === 0) return h;
  const parts = flat.split(NUL);
  for (let i = 0; i + 1 < parts.length; i += 2) h.append(parts[i], parts[i + 1]);
  return h;
}

/** A complete response: status, `name NUL value ...`, body bytes. */
export function fullResponse(status, head, body) {
  return new Response(status === 204 || status === 304 ? null : body, { status, headers: headers(head) });
}

/**
 * A streamed response pulled from the Rust relay, one chunk per pull. When the stream ends (or
 * the client goes away) the relay is finished after the response, under `ctx.waitUntil`.
 */
export function streamResponse(status, head, relay, ctx) {
  let pending = null;
  let finished = false;
  // The relay lives in the instance that made it: after a restart (a trap, see boot.js) its
  // pointer would mean something else in the new one, so the stream fails instead.
  const instance = globalThis.__ascSettled;
  const alive = () => globalThis.__ascSettled === instance;
  const finish = () => {
    if (finished) return;
    finished = true;
    ctx.waitUntil((async () => {
      try { await pending; } catch { /* the pull's own error */ }
      if (alive()) await relay.finish();
    })());
  };
  const body = new ReadableStream({
    type: 'bytes',
    async pull(controller) {
      if (!alive()) {
        controller.error(new Error('asc: the gateway restarted during this stream'));
        return;
      }
      pending = relay.next();
      const chunk = await pending;
      pending = null;
      if (chunk === undefined) {
        controller.close();
        finish();
      } else {
        controller.enqueue(chunk);
      }
    },
    cancel() { finish(); },
  });
  return new Response(body, { status, headers: headers(head) });
}

export function waitUntil(ctx, promise) {
  ctx.waitUntil(promise);
}

// --- Bodies -----------------------------------------------------------------------------------

/**
 * The whole body of a Request or Response, refusing more than `limit` bytes: `null` when too
 * large. A body of known length is read with one `arrayBuffer()` (no reader to release).
 */
export async function readAll(source, limit) {
  if (source.body === null) return new Uint8Array(0);
  const declared = source.headers.get('content-length');
  if (declared !== null && /^\d+$/.test(declared.trim())) {
    if (Number(declared) > limit) return null;
    const bytes = new Uint8Array(await source.arrayBuffer());
    return bytes.length > limit ? null : bytes;
  }
  const reader = source.body.getReader();
  const parts = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > limit) {
      reader.cancel().catch(() => {});
      return null;
    }
    parts.push(value);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** A chunk reader over a body; `next()` gives a Uint8Array or `undefined` at the end. */
export function chunkReader(source) {
  const reader = source.body ? source.body.getReader() : null;
  return {
    async next() {
      if (reader === null) return undefined;
      const { done, value } = await reader.read();
      return done ? undefined : value;
    },
  };
}

// --- Upstream calls ---------------------------------------------------------------------------

/**
 * Sends an approved request. Resolves to `[status, head, response]`, or `['timeout']` when no
 * response headers came within `timeoutMs`, or `['unreachable', why]`. Redirects are never
 * followed: a 3xx is the upstream's answer, so nothing reaches a host the egress gate did not
 * approve.
 */
export async function send(url, method, head, body, timeoutMs) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const response = await fetch(url, {
      method,
      headers: headers(head),
      body: body.length > 0 ? body : undefined,
      redirect: 'manual',
      signal: abort.signal,
    });
    let out = '';
    for (const [name, value] of response.headers) {
      out += (out.length ? NUL : '') + name + NUL + value;
    }
    return [response.status, out, response];
  } catch (e) {
    if (abort.signal.aborted) return ['timeout'];
    return ['unreachable', String(e && e.message ? e.message : e)];
  } finally {
    clearTimeout(timer);
  }
}

// --- Configuration and secrets ------------------------------------------------------------

/** A var or secret as a string, or `undefined`. */
export function envString(env, name) {
  const v = env[name];
  return typeof v === 'string' ? v : undefined;
}

/** True the first time `name` is asked for in this isolate (kept on the global: a wasm restart does not reset it). */
export function firstTime(name) {
  const seen = (globalThis.__ascFirstTimes ??= new Set());
  if (seen.has(name)) return false;
  seen.add(name);
  return true;
}

export async function kvGet(env, binding, key) {
  const buffer = await env[binding].get(key, { type: 'arrayBuffer' });
  return buffer === null ? undefined : new Uint8Array(buffer);
}

/** Writes a config-store value (the admin store publishing a config or key record). */
export async function kvPut(env, binding, key, value) {
  await env[binding].put(key, value);
}

/** Up to `limit` key names under `prefix`, `name NUL ...` (the alert sweep's markers). */
export async function kvList(env, binding, prefix, limit) {
  const listed = await env[binding].list({ prefix, limit });
  return listed.keys.map((k) => k.name).join(NUL);
}

export async function kvDelete(env, binding, key) {
  await env[binding].delete(key);
}

// --- Durable Objects, by RPC ----------------------------------------------------------------

function namespace(env, binding, jurisdiction) {
  const ns = env[binding];
  if (!jurisdiction) return ns;
  if (typeof ns.jurisdiction !== 'function') {
    // Fail closed: an object must never be created outside the region's jurisdiction.
    throw new Error(`${binding}: this runtime cannot pin objects to jurisdiction ${jurisdiction}`);
  }
  return ns.jurisdiction(jurisdiction);
}

// Object ids are plain values: derive each once per isolate.
const ids = new Map();

export function stub(env, binding, jurisdiction, name) {
  const ns = namespace(env, binding, jurisdiction);
  const key = binding + NUL + name;
  let id = ids.get(key);
  if (id === undefined) {
    id = ns.idFromName(name);
    if (ids.size > 10000) ids.clear();
    ids.set(key, id);
  }
  return ns.get(id);
}

// Group commit. A commit (the operation that ends a request, after its response) waits in this
// isolate's queue for its ledger, and the next call to that ledger takes it along: under load
// most requests cost the ledger one call, not two. A commit nobody took is sent by the timer of
// the request that queued the first one (its waitUntil keeps it alive), after `delayMs`: 5 ms
// for a request admitted write-ahead, longer for one admitted under a lease (no admissions come
// along to carry it, and the lease is the safety net while it waits). A queue that reaches
// GROUP_COMMIT_MAX is sent at once. Only strings are shared between requests, never promises
// or I/O objects. If the call carrying a commit fails, the commit is lost and the ledger's
// expiry charges and records the request (or its lease) instead.
const queued = new Map(); // ledger name -> [op JSON]
const GROUP_COMMIT_MAX = 64;

function takeQueued(name) {
  const ops = queued.get(name);
  if (ops === undefined) return [];
  queued.delete(name);
  return ops;
}

async function sendOps(env, jurisdiction, name, ops) {
  const replies = await stub(env, 'TENANT_LEDGERS', jurisdiction, name).apply(name, ops.join(NUL));
  return replies.split(NUL);
}

// Admission pipelining. At most one ledgerCall per ledger is in flight from this isolate; the
// operations that arrive meanwhile wait in that ledger's queue and all go in the next call (with
// any commits queued for it, up to CARRY_MAX). The ledger applies them in order and stores them
// in one write before it answers, so each request is still admitted durably, with its own reply,
// before its upstream call; under load one Durable Object event admits many requests instead of
// one each.
// - A waiting request looks for its reply on its own timer: on workerd a request that waits on
//   another request's I/O is cancelled as hung (seen on this workerd), so a request's code
//   resumes from its own I/O only (as leases' waiters do, pipeline/lease.rs).
// - The request that starts a call (the carrier) keeps sending the queue's next calls, under its
//   `ctx.waitUntil` (so its client going away strands no one), but answers its own request as
//   soon as its own reply is in. After CARRY_FOR_MS it lets go, and the next waiter to look
//   takes the queue over from its own context: waitUntil work stays bounded under steady load,
//   and a waiter whose request was cancelled (it no longer looks) cannot hold the queue up.
// - A queue whose carrier made no progress for STALL_MS is taken over by a waiter the same way
//   (a carrier cut short): at worst two calls are in flight, with distinct operations.
const ledgerQueues = new Map(); // ledger name -> { waiting: [entry], carried, progressAt }
const CARRY_MAX = 64;
const CARRY_FOR_MS = 1_000;
const STALL_MS = 5_000;
const POLL_MS = 1;
// A waiter gives up (its request fails closed) if no call has answered for its operation by
// then; an operation not yet sent is withdrawn.
const WAIT_LIMIT_MS = 30_000;

/**
 * One tenant ledger operation (JSON in, JSON out), carried with whatever waits for the same
 * ledger: commits queued for it, and operations of other requests that arrived while a call was
 * in flight.
 */
export async function ledgerCall(env, ctx, jurisdiction, name, op) {
  const entry = { op, reply: undefined, error: undefined, done: false };
  let queue = ledgerQueues.get(name);
  if (queue === undefined) {
    queue = { waiting: [], carried: false, progressAt: 0 };
    ledgerQueues.set(name, queue);
  }
  queue.waiting.push(entry);
  const giveUpAt = Date.now() + WAIT_LIMIT_MS;
  while (!entry.done) {
    if (!queue.carried || Date.now() - queue.progressAt > STALL_MS) {
      queue.carried = true;
      queue.progressAt = Date.now();
      let wake;
      const own = new Promise((resolve) => { wake = resolve; });
      const carrying = carry(env, jurisdiction, name, queue, entry, wake);
      ctx.waitUntil(carrying);
      // Both settle from this request's own I/O; if another carrier took this entry, this
      // carry ends without it and the loop looks again.
      await Promise.race([own, carrying]);
      continue;
    }
    if (Date.now() > giveUpAt) {
      const unsent = queue.waiting.indexOf(entry);
      if (unsent >= 0) queue.waiting.splice(unsent, 1);
      throw new Error(`no call to ledger ${name} answered this operation`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  if (entry.error !== undefined) throw entry.error;
  return entry.reply;
}

/**
 * Sends the queue of ledger `name` in calls of up to CARRY_MAX, for up to CARRY_FOR_MS; wakes
 * `leader` (the carrying request's own operation) as soon as it is answered.
 */
async function carry(env, jurisdiction, name, queue, leader, wakeLeader) {
  const until = Date.now() + CARRY_FOR_MS;
  try {
    while (queue.waiting.length > 0 && Date.now() <= until) {
      const ops = takeQueued(name);
      const batch = queue.waiting.splice(0, Math.max(1, CARRY_MAX - ops.length));
      const first = ops.length;
      for (const entry of batch) ops.push(entry.op);
      queue.progressAt = Date.now();
      try {
        const replies = await sendOps(env, jurisdiction, name, ops);
        batch.forEach((entry, i) => { entry.reply = replies[first + i]; });
      } catch (e) {
        for (const entry of batch) entry.error = e;
      }
      queue.progressAt = Date.now();
      for (const entry of batch) {
        entry.done = true;
        if (entry === leader) wakeLeader();
      }
    }
  } finally {
    queue.carried = false;
    if (queue.waiting.length === 0 && ledgerQueues.get(name) === queue) ledgerQueues.delete(name);
  }
}

/**
 * Queues a commit for the ledger. Returns `undefined` when another request sends it (most
 * commits: nothing for the caller to wait for, so its work after the response ends here, without
 * a promise or a `waitUntil`); otherwise a promise that resolves once this request has sent the
 * call (or failed) to the call's last reply (JSON). A call that ends with a commit hands the
 * tenant's due alerts to its sender in that reply.
 */
export function ledgerCommit(env, jurisdiction, name, op, delayMs) {
  const ops = queued.get(name);
  if (ops !== undefined) {
    // Another request's timer is pending for this ledger: it (or a call before it) sends this.
    ops.push(op);
    if (ops.length >= GROUP_COMMIT_MAX) return sendOps(env, jurisdiction, name, takeQueued(name)).then((replies) => replies.at(-1));
    return undefined;
  }
  const mine = [op];
  queued.set(name, mine);
  return sendAfter(env, jurisdiction, name, mine, delayMs);
}

/** Sends the commit queue `mine` after `delayMs`, unless a call took it along meanwhile. */
async function sendAfter(env, jurisdiction, name, mine, delayMs) {
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  // This timer sends only its own queue. A call that took the queue along (or a full queue) sent
  // it already, and the queue begun after that has its own timer: taking that one too would cut
  // its window short, and under leases, where a lease call takes the queue every few dozen
  // requests, stale timers sent about twice as many calls of half the size.
  if (queued.get(name) !== mine) return undefined;
  queued.delete(name);
  return (await sendOps(env, jurisdiction, name, mine)).at(-1);
}

/** One circuit board operation (JSON in, JSON out). */
export function circuitCall(env, jurisdiction, tenant, op) {
  return stub(env, 'CIRCUIT_BOARDS', jurisdiction, tenant).apply(op);
}

// --- The control plane's Worker -------------------------------------------------------------

/** The request, as it came, to the control plane's Worker; `undefined` without the binding. */
export function toControl(env, request) {
  return env.CONTROL ? env.CONTROL.fetch(request) : undefined;
}

/**
 * What a config's guardrails need compiled (`sources`: `GuardSources` as JSON: custom patterns,
 * deny terms' non-ASCII characters), compiled by the control plane's Worker over the CONTROL
 * binding: the request plane carries no regex compiler or case tables. The answer is
 * `CompiledGuard::to_wire`'s bytes. Asked once per config version an isolate loads, for configs
 * that need something only.
 */
export async function compileGuard(env, sources) {
  if (!env.CONTROL) throw new Error('no CONTROL service binding');
  const response = await env.CONTROL.fetch(COMPILE_GUARD_URL, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: sources,
  });
  if (!response.ok) throw new Error(`the control plane answered ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** The control plane's internal route; its Worker has no public routes (see control.rs). */
const COMPILE_GUARD_URL = 'https://control.internal/_asc/v1/guard';

// --- The response cache: an R2 bucket in the region's jurisdiction -------------------------

function cacheBucket(env) {
  const bucket = env.ASC_CACHE;
  // A tenant opted into the cache on a deployment without the bucket: every read is a miss
  // and the adapter logs why.
  if (!bucket) throw new Error('no ASC_CACHE bucket is bound in this deployment');
  return bucket;
}

export async function cacheGet(env, name) {
  const object = await cacheBucket(env).get(name);
  return object === null ? undefined : new Uint8Array(await object.arrayBuffer());
}

export async function cachePut(env, name, bytes, expiresMs) {
  await cacheBucket(env).put(name, bytes, {
    httpMetadata: { contentType: 'application/json' },
    customMetadata: { expires_ms: String(expiresMs) },
  });
}
