// The platform calls the Rust adapter makes, as few and as coarse as possible: each function is
// one crossing of the JS boundary, and values cross flat (strings joined by NUL, bytes as one
// Uint8Array) rather than as many small JS objects. JSON produced by Rust is passed through as
// text and never parsed here, so 64-bit integers in it stay exact.

const NUL = '\u0000';

// --- Request and response heads -----------------------------------------------------------

/** `method NUL path NUL name NUL value ...` for the core's `Inbound`. */
export function requestHead(request) {
  const url = new URL(request.url);
  let head = request.method + NUL + url.pathname;
  let host = false;
  for (const [name, value] of request.headers) {
    if (name === 'host') host = true;
    head += NUL + name + NUL + value;
  }
  // Workers expose the Host only through the URL on some paths; the core must see it.
  if (!host) head += NUL + 'host' + NUL + url.host;
  return head;
}

function headers(flat) {
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
  const finish = () => {
    if (finished) return;
    finished = true;
    ctx.waitUntil((async () => {
      try { await pending; } catch { /* the pull's own error */ }
      await relay.finish();
    })());
  };
  const body = new ReadableStream({
    type: 'bytes',
    async pull(controller) {
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

export async function kvGet(env, binding, key) {
  const buffer = await env[binding].get(key, { type: 'arrayBuffer' });
  return buffer === null ? undefined : new Uint8Array(buffer);
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

function stub(env, binding, jurisdiction, name) {
  const ns = namespace(env, binding, jurisdiction);
  return ns.get(ns.idFromName(name));
}

/** One tenant ledger operation (JSON in, JSON out). */
export function ledgerCall(env, jurisdiction, name, op) {
  return stub(env, 'TENANT_LEDGERS', jurisdiction, name).apply(name, op);
}

/** One circuit board operation (JSON in, JSON out). */
export function circuitCall(env, jurisdiction, tenant, op) {
  return stub(env, 'CIRCUIT_BOARDS', jurisdiction, tenant).apply(op);
}

/** A batch of records for an audit stream (JSON in, acknowledgement JSON out). */
export function auditAppend(env, jurisdiction, stream, batch) {
  return stub(env, 'AUDIT_SEQUENCER', jurisdiction, stream).append(batch);
}

/** Starts an audit stream (its sequencer's head and heartbeats) if it has not started. */
export function auditEnsure(env, jurisdiction, stream) {
  return stub(env, 'AUDIT_SEQUENCER', jurisdiction, stream).ensure(stream);
}

// --- Durable Object storage (writes are not awaited: the output gate holds the reply until
// they are durable, and a failed write resets the object) ------------------------------------

/** Every stored entry as `key NUL value NUL ...` (values are JSON strings). */
export async function storageAll(storage, prefix) {
  const map = await storage.list(prefix ? { prefix } : undefined);
  let out = '';
  for (const [key, value] of map) {
    if (typeof value !== 'string') continue;
    out += (out.length ? NUL : '') + key + NUL + value;
  }
  return out;
}

export async function storageGet(storage, key) {
  const v = await storage.get(key);
  return typeof v === 'string' ? v : undefined;
}

/** Puts `key NUL value ...` and deletes `key NUL key ...`, in one atomic write. */
export function storageWrite(storage, puts, deletes) {
  if (puts.length > 0) {
    const parts = puts.split(NUL);
    const entries = {};
    for (let i = 0; i + 1 < parts.length; i += 2) entries[parts[i]] = parts[i + 1];
    const keys = Object.keys(entries);
    // At most 128 keys per put.
    for (let i = 0; i < keys.length; i += 128) {
      const chunk = {};
      for (const k of keys.slice(i, i + 128)) chunk[k] = entries[k];
      storage.put(chunk);
    }
  }
  if (deletes.length > 0) {
    const keys = deletes.split(NUL);
    for (let i = 0; i < keys.length; i += 128) storage.delete(keys.slice(i, i + 128));
  }
}

export function storageSetAlarm(storage, at) {
  storage.setAlarm(at);
}

export async function storageGetAlarm(storage) {
  const at = await storage.getAlarm();
  return at === null ? undefined : at;
}

// --- The audit bucket -------------------------------------------------------------------

export async function bucketPut(env, binding, key, bytes, contentType) {
  await env[binding].put(key, bytes, { httpMetadata: { contentType } });
}
