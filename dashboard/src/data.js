// Traffic and spend over time: the analytics endpoint when the deployment has it; otherwise the
// same rows derived from the newest audit records (each request's record carries its model,
// provider, key, outcome, error code, latency, attempts, guardrail counts and settled cost).
import { get, optional, query } from './api.js';

export const BUCKET_MS = { hour: 3600_000, day: 86_400_000 };
const AUDIT_PAGES = 3;

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** Requests' audit records of the tenant in the window (admin actions left out). */
export async function auditRecords(tenant, fromMs, toMs, pages = AUDIT_PAGES) {
  const out = [];
  let cursor = '';
  let complete = true;
  for (let i = 0; i < pages; i += 1) {
    const r = await get(`/tenants/${tenant}/audit${query({ from_ms: fromMs, to_ms: toMs, limit: 200, cursor })}`);
    for (const item of r.json.data) {
      if (!String(item.record.operation || '').startsWith('admin.')) out.push(item.record);
    }
    cursor = r.json.next_cursor;
    if (!cursor) break;
    if (i === pages - 1) complete = false;
  }
  return { records: out, complete };
}

/** Rows in the analytics endpoint's shape, from audit records. */
export function rowsFromAudit(records, bucket, groupBy) {
  const size = BUCKET_MS[bucket];
  const groups = new Map();
  for (const r of records) {
    const start = Math.floor(r.timestamp_ms / size) * size;
    const fields = {
      model: r.served_model || r.requested_model || '(none)',
      provider: r.provider || '(none)',
      key: r.key_id || '(none)',
      tag: (r.tags || []).join(','),
    };
    const id = [start, ...groupBy.map((g) => fields[g])].join('\u0000');
    let row = groups.get(id);
    if (!row) {
      row = { start_ms: start, requests: 0, errors: {}, input_tokens: 0, output_tokens: 0, cost_usd_micros: 0, cache_hits: 0, fallbacks: 0, retries: 0, guardrail_hits: {}, _lat: [], _ttft: [] };
      for (const g of groupBy) row[g === 'key' ? 'key_id' : g] = fields[g];
      groups.set(id, row);
    }
    row.requests += 1;
    if (r.outcome !== 'ok') {
      const code = r.error_code || r.outcome;
      row.errors[code] = (row.errors[code] || 0) + 1;
    }
    if (r.usage) {
      row.input_tokens += r.usage.input_tokens || 0;
      row.output_tokens += r.usage.output_tokens || 0;
    }
    row.cost_usd_micros += Number(r.settled_usd_micros || 0);
    if (r.cache && r.cache.outcome === 'hit') row.cache_hits += 1;
    const attempts = r.attempts || [];
    if (attempts.length > 1) {
      const models = new Set(attempts.map((a) => a.model));
      row.fallbacks += models.size - 1;
      row.retries += attempts.length - models.size;
    }
    for (const g of r.guardrails || []) {
      if (g.action === 'allow') continue;
      const k = `${g.detector}:${g.action}`;
      row.guardrail_hits[k] = (row.guardrail_hits[k] || 0) + (g.count || 1);
    }
    if (typeof r.latency_ms === 'number') row._lat.push(r.latency_ms);
    if (typeof r.ttft_ms === 'number') row._ttft.push(r.ttft_ms);
  }
  return [...groups.values()].map((row) => {
    const lat = row._lat.sort((a, b) => a - b);
    const ttft = row._ttft.sort((a, b) => a - b);
    delete row._lat;
    delete row._ttft;
    return { ...row, latency_ms: { p50: percentile(lat, 50), p95: percentile(lat, 95) },
      ttft_ms: ttft.length ? { p50: percentile(ttft, 50), p95: percentile(ttft, 95) } : null };
  }).sort((a, b) => a.start_ms - b.start_ms);
}

/**
 * `{rows, source, complete}`: `source` is `analytics` (needs `usage.read`) or `audit` (derived
 * from the newest audit records, with `audit.search`; `complete` false when more were in the
 * window than one look reads).
 */
export async function traffic(tenant, { fromMs, toMs, bucket, groupBy }, can) {
  if (can['usage.read']) {
    const a = await optional(`/tenants/${tenant}/analytics${query({ from_ms: fromMs, to_ms: toMs, bucket, group_by: groupBy.join(',') })}`);
    if (a && Array.isArray(a.rows)) return { rows: a.rows, source: 'analytics', complete: true };
  }
  const { records, complete } = await auditRecords(tenant, fromMs, toMs);
  return { rows: rowsFromAudit(records, bucket, groupBy), source: 'audit', complete };
}

/** Bucket starts covering the window, and one series per group value of `field`. */
export function seriesBy(rows, field, value, fromMs, toMs, bucket) {
  const size = BUCKET_MS[bucket];
  const xs = [];
  for (let t = Math.floor(fromMs / size) * size; t < toMs; t += size) xs.push(t);
  const names = [...new Set(rows.map((r) => (field ? r[field] : 'all')))].sort();
  const series = names.map((name) => {
    const values = xs.map((x) => {
      const hits = rows.filter((r) => r.start_ms === x && (field ? r[field] === name : true));
      if (hits.length === 0) return null;
      return value(hits);
    });
    return { label: String(name), values };
  });
  return { xs, series };
}

export const sum = (rows, f) => rows.reduce((n, r) => n + Number(f(r) || 0), 0);
