// Spend against budget: each budget of the tenant (tenant-wide and per tag) with its period,
// spent, reserved and remaining; the burn rate over the window (a chart); spend per key and per
// tag; and the alerts raised.
import { useState } from 'preact/hooks';
import { html } from '../html.js';
import { get, optional, query } from '../api.js';
import { traffic, seriesBy, sum } from '../data.js';
import { Chart } from '../chart.js';
import { useLoad, Status, WindowPicker, WINDOWS, SourceNote } from '../load.js';
import { usd, when, pct, int } from '../format.js';

function appliesTo(config, id) {
  const b = ((config && config.budgets) || []).find((x) => x.id === id);
  if (!b) return '';
  if (typeof b.applies_to === 'string') return b.applies_to === 'tenant' ? 'the whole tenant' : b.applies_to;
  if (b.applies_to && b.applies_to.tag) return `tag ${b.applies_to.tag}`;
  return JSON.stringify(b.applies_to);
}

function Budgets({ usage, config }) {
  if (usage.budgets.length === 0) return html`<p class="empty">This tenant has no tenant-wide or tag budgets.</p>`;
  return html`
    <div class="scroll"><table class="budgets">
      <caption>Budgets in the current period</caption>
      <thead><tr>
        <th scope="col">Budget</th><th scope="col">Applies to</th><th scope="col">Period</th><th scope="col">Mode</th>
        <th scope="col">Spent</th><th scope="col">Reserved</th><th scope="col">Limit</th><th scope="col">Used</th><th scope="col">Alerts reached</th>
      </tr></thead>
      <tbody>${usage.budgets.map((b) => {
        const used = pct(b.spent_micros + b.reserved_micros, b.limit_micros);
        return html`<tr class=${b.exceeded ? 'exceeded' : ''}>
          <th scope="row">${b.budget_id}</th>
          <td>${appliesTo(config, b.budget_id)}</td>
          <td>${b.period}<br /><small>${when(b.period_start_ms)}${b.period_end_ms ? ` – ${when(b.period_end_ms)}` : ''}</small></td>
          <td>${b.mode}</td>
          <td data-spent=${b.spent_micros}>${usd(b.spent_micros)}</td>
          <td>${usd(b.reserved_micros)}</td>
          <td>${usd(b.limit_micros)}</td>
          <td><meter min="0" max="100" low="80" high="95" optimum="0" value=${Math.min(100, used)} aria-label=${`${b.budget_id} used`}></meter> ${used}%${b.exceeded ? ' (exceeded)' : ''}</td>
          <td>${b.alerts_reached.length ? b.alerts_reached.map((p) => `${p}%`).join(', ') : '—'}</td>
        </tr>`;
      })}</tbody>
    </table></div>`;
}

function Alerts({ alerts, usage }) {
  if (alerts === null) {
    const reached = usage.budgets.filter((b) => b.alerts_reached.length || b.exceeded);
    return html`
      <p class="note">No alert history here (this deployment has no alerts endpoint, or your roles do not read it); thresholds reached in the current period:</p>
      ${reached.length === 0 ? html`<p class="empty">None.</p>` : html`<ul>${reached.map((b) => html`<li>${b.budget_id}: ${b.alerts_reached.map((p) => `${p}%`).join(', ')}${b.exceeded ? ' — exceeded' : ''}</li>`)}</ul>`}`;
  }
  if (alerts.data.length === 0) return html`<p class="empty">No alerts raised.</p>`;
  return html`<div class="scroll"><table class="alerts"><caption>Alerts raised, newest first</caption>
    <thead><tr><th scope="col">When</th><th scope="col">Type</th><th scope="col">Detail</th><th scope="col">Delivery</th></tr></thead>
    <tbody>${alerts.data.map((a) => html`<tr><td>${when(a.at_ms)}</td><td class="type">${a.type}</td><td><code>${JSON.stringify(a.detail)}</code></td>
      <td>${a.delivery ? `${a.delivery.status}${a.delivery.attempts ? ` (${a.delivery.attempts} attempt(s))` : ''}` : ''}</td></tr>`)}</tbody>
  </table></div>`;
}

function PerGroup({ rows, field, label }) {
  const totals = new Map();
  for (const r of rows) {
    const k = r[field] || '(none)';
    const t = totals.get(k) || { cost: 0, requests: 0 };
    t.cost += Number(r.cost_usd_micros || 0);
    t.requests += r.requests;
    totals.set(k, t);
  }
  const list = [...totals.entries()].sort((a, b) => b[1].cost - a[1].cost);
  if (list.length === 0) return html`<p class="empty">No spend by ${label} in this window.</p>`;
  return html`<div class="scroll"><table class=${`per-${field}`}><caption>Spend by ${label}</caption>
    <thead><tr><th scope="col">${label}</th><th scope="col">Requests</th><th scope="col">Spend</th></tr></thead>
    <tbody>${list.map(([k, t]) => html`<tr><th scope="row">${k}</th><td>${int(t.requests)}</td><td>${usd(t.cost)}</td></tr>`)}</tbody>
  </table></div>`;
}

export function Spend({ tenant, can }) {
  const [win, setWin] = useState('24h');
  const w = WINDOWS.find((x) => x.id === win);
  const usage = useLoad(async () => {
    const [u, c] = await Promise.all([get(`/tenants/${tenant}/usage`), get(`/tenants/${tenant}`).catch(() => null)]);
    return { usage: u.json, config: c && c.json };
  }, [tenant]);
  const alerts = useLoad(() => (can['alerts.read'] ? optional(`/tenants/${tenant}/alerts${query({ limit: 50 })}`) : Promise.resolve(null)), [tenant]);
  const series = useLoad(async () => {
    const toMs = Date.now() + 60_000;
    const fromMs = toMs - w.ms;
    const byKey = await traffic(tenant, { fromMs, toMs, bucket: w.bucket, groupBy: ['key'] }, can);
    const byTag = await traffic(tenant, { fromMs, toMs, bucket: w.bucket, groupBy: ['tag'] }, can);
    return { fromMs, toMs, byKey, byTag };
  }, [tenant, win]);

  let chart = null;
  if (series.data) {
    const { fromMs, toMs, byKey } = series.data;
    const per = seriesBy(byKey.rows, null, (rows) => sum(rows, (r) => r.cost_usd_micros), fromMs, toMs, w.bucket);
    let running = 0;
    const cumulative = per.series.length ? per.series[0].values.map((v) => { running += v || 0; return running; }) : [];
    chart = html`<${Chart} title="Burn rate: spend per bucket and cumulative" xs=${per.xs}
      series=${per.series.length ? [{ label: 'spend per bucket', values: per.series[0].values }, { label: 'cumulative', values: cumulative }] : []}
      format=${usd} />`;
  }
  return html`
    <h1>Spend — ${tenant}</h1>
    <section aria-labelledby="budgets-h">
      <h2 id="budgets-h">Budgets</h2>
      <${Status} load=${usage} what="budgets" />
      ${usage.data && html`<${Budgets} usage=${usage.data.usage} config=${usage.data.config} />`}
    </section>
    <section aria-labelledby="burn-h">
      <h2 id="burn-h">Burn rate</h2>
      <div class="controls"><${WindowPicker} id="spend-window" value=${win} onChange=${setWin} /></div>
      <${Status} load=${series} what="spend over time" />
      ${series.data && html`<${SourceNote} ...${series.data.byKey} />`}
      ${chart}
      ${series.data && html`<div class="cols">
        <${PerGroup} rows=${series.data.byKey.rows} field="key_id" label="key" />
        <${PerGroup} rows=${series.data.byTag.rows} field="tag" label="business-unit tag" />
      </div>`}
    </section>
    <section aria-labelledby="alerts-h">
      <h2 id="alerts-h">Alerts</h2>
      <${Status} load=${alerts} what="alerts" />
      ${usage.data && !alerts.loading && !alerts.error && html`<${Alerts} alerts=${alerts.data} usage=${usage.data.usage} />`}
    </section>`;
}
