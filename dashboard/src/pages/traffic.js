// Traffic by model and provider over time: requests, errors by code, p50/p95 latency and time
// to first token (streamed requests), fallbacks and retries.
import { useState } from 'preact/hooks';
import { html } from '../html.js';
import { traffic, seriesBy, sum } from '../data.js';
import { Chart } from '../chart.js';
import { useLoad, Status, WindowPicker, WINDOWS, SourceNote } from '../load.js';
import { int, ms } from '../format.js';

const max = (rows, f) => {
  const v = rows.map(f).filter((x) => typeof x === 'number');
  return v.length ? Math.max(...v) : null;
};

function Totals({ rows }) {
  const groups = new Map();
  for (const r of rows) {
    const k = `${r.model}\u0000${r.provider}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(r);
  }
  if (groups.size === 0) return html`<p class="empty">No requests in this window.</p>`;
  return html`<div class="scroll"><table class="traffic-totals">
    <caption>By model and provider</caption>
    <thead><tr><th scope="col">Model</th><th scope="col">Provider</th><th scope="col">Requests</th><th scope="col">Errors</th>
      <th scope="col">p50 latency</th><th scope="col">p95 latency</th><th scope="col">p95 time to first token</th>
      <th scope="col">Fallbacks</th><th scope="col">Retries</th><th scope="col">Tokens in / out</th></tr></thead>
    <tbody>${[...groups.values()].map((g) => {
      const errors = {};
      for (const r of g) for (const [c, n] of Object.entries(r.errors || {})) errors[c] = (errors[c] || 0) + n;
      return html`<tr>
        <th scope="row">${g[0].model}</th><td>${g[0].provider}</td><td>${int(sum(g, (r) => r.requests))}</td>
        <td>${Object.keys(errors).length ? Object.entries(errors).map(([c, n]) => `${c}: ${n}`).join(', ') : '0'}</td>
        <td>${ms(max(g, (r) => r.latency_ms && r.latency_ms.p50))}</td><td>${ms(max(g, (r) => r.latency_ms && r.latency_ms.p95))}</td>
        <td>${ms(max(g, (r) => r.ttft_ms && r.ttft_ms.p95)) || '—'}</td>
        <td>${int(sum(g, (r) => r.fallbacks))}</td><td>${int(sum(g, (r) => r.retries))}</td>
        <td>${int(sum(g, (r) => r.input_tokens))} / ${int(sum(g, (r) => r.output_tokens))}</td>
      </tr>`;
    })}</tbody>
  </table></div>`;
}

export function Traffic({ tenant, can }) {
  const [win, setWin] = useState('24h');
  const w = WINDOWS.find((x) => x.id === win);
  const load = useLoad(async () => {
    const toMs = Date.now() + 60_000;
    const fromMs = toMs - w.ms;
    return { fromMs, toMs, ...(await traffic(tenant, { fromMs, toMs, bucket: w.bucket, groupBy: ['model', 'provider'] }, can)) };
  }, [tenant, win]);
  const d = load.data;
  let charts = null;
  if (d) {
    const by = (field, f) => seriesBy(d.rows, field, f, d.fromMs, d.toMs, w.bucket);
    const requests = by('model', (rows) => sum(rows, (r) => r.requests));
    const codes = [...new Set(d.rows.flatMap((r) => Object.keys(r.errors || {})))].sort();
    const errXs = requests.xs;
    const errors = codes.map((c) => ({ label: c, values: errXs.map((x) => {
      const hits = d.rows.filter((r) => r.start_ms === x);
      return hits.length ? sum(hits, (r) => (r.errors || {})[c]) : null;
    }) }));
    const p50 = by('model', (rows) => max(rows, (r) => r.latency_ms && r.latency_ms.p50));
    const p95 = by('model', (rows) => max(rows, (r) => r.latency_ms && r.latency_ms.p95));
    const ttft = by('model', (rows) => max(rows, (r) => r.ttft_ms && r.ttft_ms.p95));
    const hasTtft = ttft.series.some((s) => s.values.some((v) => v != null));
    charts = html`
      <${Chart} title="Requests by model" xs=${requests.xs} series=${requests.series} format=${int} />
      <${Chart} title="Errors by code" xs=${errXs} series=${errors} format=${int} />
      <${Chart} title="Latency by model (p50 and p95)" xs=${p50.xs}
        series=${[...p50.series.map((s) => ({ ...s, label: `${s.label} p50` })), ...p95.series.map((s) => ({ ...s, label: `${s.label} p95` }))]} format=${ms} />
      ${hasTtft ? html`<${Chart} title="Time to first token by model (p95, streamed requests)" xs=${ttft.xs} series=${ttft.series} format=${ms} />`
        : html`<p class="note">No time-to-first-token figures in this window (only streamed requests have them).</p>`}`;
  }
  return html`
    <h1>Traffic — ${tenant}</h1>
    <div class="controls"><${WindowPicker} id="traffic-window" value=${win} onChange=${setWin} />
      <button type="button" onClick=${load.reload}>Refresh</button></div>
    <${Status} load=${load} what="traffic" />
    ${d && html`<${SourceNote} source=${d.source} complete=${d.complete} /><${Totals} rows=${d.rows} />${charts}`}`;
}
