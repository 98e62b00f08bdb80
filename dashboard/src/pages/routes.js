// Routes with their targets and weights, and each target's live circuit breaker state.
import { html } from '../html.js';
import { get } from '../api.js';
import { useLoad, Status } from '../load.js';
import { when, int } from '../format.js';

function Circuit({ c }) {
  const text = { closed: 'closed', open: 'open', half_open: 'half-open', unknown: 'unknown' }[c.state] || c.state;
  const detail = c.state === 'closed' ? `${c.failures} consecutive failure(s)` : c.state === 'open' ? `until ${when(c.until_ms)}` : '';
  return html`<span class=${`badge circuit-${c.state}`}>${text}</span> <small>${detail}</small>`;
}

function Targets({ set }) {
  return html`<span>${set.strategy}: </span><ol class="targets">${set.targets.map((t) => html`<li>${t.model}${set.strategy === 'weighted' ? html` <small>weight ${t.weight}</small>` : ''}</li>`)}</ol>`;
}

export function Routes({ tenant }) {
  const load = useLoad(async () => (await get(`/tenants/${tenant}/routes`)).json, [tenant]);
  const d = load.data;
  return html`
    <h1>Routes — ${tenant}</h1>
    <div class="controls"><button type="button" onClick=${load.reload}>Refresh circuit states</button></div>
    <${Status} load=${load} what="routes" />
    ${d && html`
      <section aria-labelledby="models-h"><h2 id="models-h">Targets</h2>
        <p class="note">A circuit opens after ${d.breaker.failure_threshold} consecutive failures and stays open ${int(d.breaker.cooldown_ms)} ms; then one request probes it. Retries and fallbacks may add at most ${d.retry_budget_percent}% to requests.</p>
        <div class="scroll"><table class="models"><caption>Models (targets) and live circuit state</caption>
          <thead><tr><th scope="col">Target</th><th scope="col">Provider</th><th scope="col">Upstream model</th><th scope="col">Endpoint</th><th scope="col">Timeout</th><th scope="col">Circuit</th></tr></thead>
          <tbody>${d.models.map((m) => html`<tr><th scope="row">${m.id}</th><td>${m.provider}</td><td>${m.upstream_model}</td><td>${m.endpoint_host}</td><td>${int(m.timeout_ms)} ms</td><td><${Circuit} c=${m.circuit} /></td></tr>`)}</tbody>
        </table></div>
      </section>
      <section aria-labelledby="routes-h"><h2 id="routes-h">Routes</h2>
        ${d.routes.length === 0 ? html`<p class="empty">No routes: each model is called as named.</p>` : html`
        <div class="scroll"><table class="routes"><caption>Routes (aliases) with targets, weights, rules, retries and fallbacks</caption>
          <thead><tr><th scope="col">Route</th><th scope="col">Targets</th><th scope="col">Rules</th><th scope="col">Attempts</th><th scope="col">Falls back on</th></tr></thead>
          <tbody>${d.routes.map((r) => html`<tr>
            <th scope="row">${r.id}</th>
            <td><${Targets} set=${r.default} /></td>
            <td>${r.rules.length === 0 ? '—' : r.rules.map((rule) => html`<div>when ${[...rule.when.tags.map((t) => `tag ${t}`), ...rule.when.workloads.map((x) => `workload ${x}`)].join(' and ')}: <${Targets} set=${rule.targets} /></div>`)}</td>
            <td>${r.retry.max_attempts} <small>(backoff ${r.retry.base_backoff_ms}–${r.retry.max_backoff_ms} ms)</small></td>
            <td>${r.fallback_on.statuses.join(', ')}${r.fallback_on.timeouts ? ', timeouts' : ''}</td>
          </tr>`)}</tbody>
        </table></div>`}
      </section>`}`;
}
