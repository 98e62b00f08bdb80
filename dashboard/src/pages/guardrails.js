// Guardrail hits by detector and mode: counts only. The matched text never leaves the gateway
// (audit records and analytics hold counts).
import { useState } from 'preact/hooks';
import { html } from '../html.js';
import { traffic, seriesBy } from '../data.js';
import { Chart } from '../chart.js';
import { useLoad, Status, WindowPicker, WINDOWS, SourceNote } from '../load.js';
import { int } from '../format.js';

export function Guardrails({ tenant, can }) {
  const [win, setWin] = useState('24h');
  const w = WINDOWS.find((x) => x.id === win);
  const load = useLoad(async () => {
    const toMs = Date.now() + 60_000;
    const fromMs = toMs - w.ms;
    return { fromMs, toMs, ...(await traffic(tenant, { fromMs, toMs, bucket: w.bucket, groupBy: ['model'] }, can)) };
  }, [tenant, win]);
  const d = load.data;
  let body = null;
  if (d) {
    const totals = {};
    for (const r of d.rows) for (const [k, n] of Object.entries(r.guardrail_hits || {})) totals[k] = (totals[k] || 0) + n;
    const keys = Object.keys(totals).sort();
    const xs = seriesBy(d.rows, null, () => 0, d.fromMs, d.toMs, w.bucket).xs;
    const series = keys.map((k) => ({ label: k.replace(':', ' / '), values: xs.map((x) => {
      const hits = d.rows.filter((r) => r.start_ms === x);
      return hits.length ? hits.reduce((n, r) => n + ((r.guardrail_hits || {})[k] || 0), 0) : null;
    }) }));
    body = keys.length === 0 ? html`<p class="empty">No guardrail hits in this window.</p>` : html`
      <div class="scroll"><table class="guardrail-hits"><caption>Hits by detector and mode</caption>
        <thead><tr><th scope="col">Detector</th><th scope="col">Mode</th><th scope="col">Hits</th></tr></thead>
        <tbody>${keys.map((k) => { const [det, mode] = k.split(':'); return html`<tr><th scope="row">${det}</th><td>${mode}</td><td>${int(totals[k])}</td></tr>`; })}</tbody>
      </table></div>
      <${Chart} title="Guardrail hits over time" xs=${xs} series=${series} format=${int} />`;
  }
  return html`
    <h1>Guardrails — ${tenant}</h1>
    <p class="note">Counts of matches per detector and action. The matched text is never stored or shown.</p>
    <div class="controls"><${WindowPicker} id="guard-window" value=${win} onChange=${setWin} /></div>
    <${Status} load=${load} what="guardrail hits" />
    ${d && html`<${SourceNote} source=${d.source} complete=${d.complete} />`}
    ${body}`;
}
