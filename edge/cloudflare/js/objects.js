// The platform calls only the control plane's Worker makes (the Durable Objects' storage, the
// audit bucket, the admin store's calls and KV writes, the dashboard's files), apart from
// host.js so the request plane's bundle does not carry them: wasm-bindgen imports each module
// whole, as a namespace. The same conventions as host.js.

import { NUL, headers, stub } from './host.js';

/**
 * `kvPut` waiting at most `ms` (the admin store's calls run under `blockConcurrencyWhile`,
 * which resets an object whose callback takes 30 s): `undefined` once written, `'unanswered'`
 * when KV has not answered by then (the write may still land), throws when KV refused it.
 */
export async function kvPutWithin(env, binding, key, value, ms) {
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve('unanswered'), ms);
  });
  try {
    return await Promise.race([env[binding].put(key, value).then(() => undefined), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** An operation on a tenant's admin store (config versions, key records): JSON in and out. */
export function adminCall(env, jurisdiction, tenant, op) {
  return stub(env, 'TENANT_ADMIN', jurisdiction, tenant).apply(tenant, op);
}

/** A batch of records for an audit stream (JSON in, acknowledgement JSON out). */
export function auditAppend(env, jurisdiction, stream, batch) {
  return stub(env, 'AUDIT_SEQUENCER', jurisdiction, stream).append(batch);
}

/** Starts an audit stream (its sequencer's head and heartbeats) if it has not started. */
export function auditEnsure(env, jurisdiction, stream) {
  return stub(env, 'AUDIT_SEQUENCER', jurisdiction, stream).ensure(stream);
}

// --- Durable Object storage: one SQLite table of text keys and JSON text values, through the
// synchronous SQL API (no promise per write, no structured clone of each value). Writes commit
// with the event's implicit transaction; the output gate holds the reply until they are durable,
// and a failed write resets the object. ----------------------------------------------------------

const ready = new WeakSet();

function sql(storage) {
  if (!ready.has(storage)) {
    storage.sql.exec('CREATE TABLE IF NOT EXISTS asc_kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID');
    ready.add(storage);
  }
  return storage.sql;
}

/** Every stored entry under `prefix` as `key NUL value NUL ...`, in key order. */
export async function storageAll(storage, prefix) {
  const rows = prefix
    ? sql(storage).exec('SELECT key, value FROM asc_kv WHERE key >= ? AND key < ? ORDER BY key', prefix, prefix + '\uffff')
    : sql(storage).exec('SELECT key, value FROM asc_kv ORDER BY key');
  let out = '';
  for (const row of rows) {
    out += (out.length ? NUL : '') + row.key + NUL + row.value;
  }
  return out;
}

/**
 * A tenant admin store's rows as `key NUL value NUL ...`: every row but the versions' (`v:<n>`),
 * which include each version's description (`m:<n>`, stored beside it), and the newest version
 * whole. A version stored before descriptions had rows of their own gets one from its row
 * (`json_extract`, which parses that config; a row that is not JSON is left out, as TenantStore
 * leaves out a row it cannot read). An object's memory then holds one config, not its history
 * (up to 1 MB each); `TenantStore` asks for an older one when it needs it.
 */
export async function adminRows(storage) {
  const db = sql(storage);
  const newest = db.exec("SELECT key FROM asc_kv WHERE key >= 'v:' AND key < 'v;' ORDER BY key DESC LIMIT 1").toArray();
  const rows = db.exec(
    "SELECT key AS name, value FROM asc_kv WHERE NOT (key >= 'v:' AND key < 'v;') " +
      'UNION ALL SELECT key, value FROM asc_kv WHERE key = ?1 ' +
      "UNION ALL SELECT 'm:' || substr(v.key, 3), CASE WHEN json_valid(v.value) THEN json_extract(v.value, '$.meta') END " +
      "FROM asc_kv AS v WHERE v.key >= 'v:' AND v.key < 'v;' AND v.key <> ?1 " +
      "AND NOT EXISTS (SELECT 1 FROM asc_kv AS m WHERE m.key = 'm:' || substr(v.key, 3))",
    newest.length ? newest[0].key : '',
  );
  let out = '';
  for (const row of rows) {
    if (row.value === null) continue;
    out += (out.length ? NUL : '') + row.name + NUL + row.value;
  }
  return out;
}

export async function storageGet(storage, key) {
  const rows = sql(storage).exec('SELECT value FROM asc_kv WHERE key = ?', key).toArray();
  return rows.length ? rows[0].value : undefined;
}

/** Puts `key NUL value ...` and deletes `key NUL key ...`, in one transaction. */
export function storageWrite(storage, puts, deletes) {
  const db = sql(storage);
  if (puts.length > 0) {
    const parts = puts.split(NUL);
    // Up to 32 rows a statement (SQLite's bound-parameter limits stay far away).
    for (let i = 0; i + 1 < parts.length; i += 64) {
      const chunk = parts.slice(i, i + 64);
      const rows = chunk.length / 2;
      db.exec('INSERT OR REPLACE INTO asc_kv (key, value) VALUES ' + '(?, ?),'.repeat(rows).slice(0, -1), ...chunk);
    }
  }
  if (deletes.length > 0) {
    const keys = deletes.split(NUL);
    for (let i = 0; i < keys.length; i += 64) {
      const chunk = keys.slice(i, i + 64);
      db.exec('DELETE FROM asc_kv WHERE key IN (' + '?,'.repeat(chunk.length).slice(0, -1) + ')', ...chunk);
    }
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

/** Object names under `prefix` after `startAfter`, ascending, at most `limit`: `name NUL ...`. */
export async function bucketList(env, binding, prefix, startAfter, limit) {
  const options = { prefix, limit };
  if (startAfter) options.startAfter = startAfter;
  const listed = await env[binding].list(options);
  return listed.objects.map((o) => o.key).join(NUL);
}

export async function bucketGet(env, binding, key) {
  const object = await env[binding].get(key);
  return object === null ? undefined : new Uint8Array(await object.arrayBuffer());
}

// --- The dashboard's files: the Worker's static assets ---------------------------------------

/**
 * A dashboard file from the `ASSETS` binding, with the core's security headers (`name NUL
 * value ...`) added. HTML is revalidated on every load; hashed assets may be cached.
 */
export async function assetResponse(env, request, head) {
  if (!env.ASSETS) throw new Error('no ASSETS binding: the dashboard was not built into this deployment');
  const url = new URL(request.url);
  const asset = await env.ASSETS.fetch(new Request(url.toString(), { method: request.method, headers: { accept: request.headers.get('accept') ?? '*/*' } }));
  const out = new Headers(asset.headers);
  const extra = headers(head);
  for (const [name, value] of extra) out.set(name, value);
  const type = out.get('content-type') ?? '';
  if (type.startsWith('text/html')) out.set('cache-control', 'no-cache');
  return new Response(asset.body, { status: asset.status, headers: out });
}
