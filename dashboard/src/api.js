// The admin API (/admin/v1) as the signed-in person: their token as a bearer (or, behind
// Cloudflare Access, no token: Access adds its assertion to every request).
import { getToken, clearToken } from './auth.js';

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || null;
    this.param = e.param || null;
    this.details = e.details || null;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

/** Calls the admin API; resolves to `{status, json, headers}` or throws ApiError. */
export async function api(method, path, { body, headers = {}, allow = [] } = {}) {
  const h = { accept: 'application/json', ...headers };
  const token = getToken();
  if (token) h.authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    h['content-type'] = 'application/json';
  }
  const r = await fetch(`/admin/v1${path}`, { method, headers: h, body: payload, credentials: 'same-origin' });
  const text = await r.text();
  let json;
  try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
  if (r.ok || allow.includes(r.status)) return { status: r.status, json, headers: r.headers, text };
  if (r.status === 401 && token) {
    clearToken();
    onUnauthorized();
  }
  throw new ApiError(r.status, json);
}

export const get = (path, opts) => api('GET', path, opts);
export const post = (path, body, opts = {}) => api('POST', path, { ...opts, body });

/** `?a=1&b=2` from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** For endpoints that may not exist on this deployment yet: `null` on 404 unknown_route. */
export async function optional(path) {
  try {
    return (await get(path)).json;
  } catch (e) {
    if (e.status === 404 && (e.code === 'unknown_url' || e.code === null)) return null;
    throw e;
  }
}
