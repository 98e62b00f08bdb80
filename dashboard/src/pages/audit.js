// Audit search: who used which model, when, with which key, and the outcome; each row names the
// batch object that holds it and how to verify that batch with `asc audit verify`.
import { useState } from 'preact/hooks';
import { html } from '../html.js';
import { get, query } from '../api.js';
import { when, usd, int } from '../format.js';

const toMs = (v) => (v ? String(new Date(v).getTime()) : '');

function Verify({ item }) {
  const stream = item.stream;
  return html`<div class="verify">
    <p>Record ${item.sequence} of stream <code>${stream}</code> is in batch object <code class="batch">${item.batch}</code>
      (entry hash <code>${item.hash.slice(0, 16)}…</code>). The search reads records; it does not verify them.</p>
    <p>To verify: copy <code>audit/${stream}/</code> (batches and digests) from the region's audit bucket into <code>./bucket-copy</code>, then run</p>
    <pre><code>asc audit verify ./bucket-copy --keys public-keys.json</code></pre>
  </div>`;
}

export function Audit({ tenant }) {
  const [form, setForm] = useState({ from: '', to: '', key_id: '', model: '', outcome: '', operation: '' });
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [open, setOpen] = useState(null);
  const params = () => ({ from_ms: toMs(form.from), to_ms: toMs(form.to), key_id: form.key_id.trim(), model: form.model.trim(), outcome: form.outcome, operation: form.operation.trim(), limit: 50 });
  async function search(cursor) {
    setBusy(true);
    setError(null);
    try {
      const r = await get(`/tenants/${tenant}/audit${query({ ...params(), cursor })}`);
      setResult((prev) => ({ ...r.json, data: cursor && prev ? [...prev.data, ...r.json.data] : r.json.data }));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  const field = (name, label, type = 'text', extra = {}) => html`
    <div class="field"><label for=${`audit-${name}`}>${label}</label>
      <input id=${`audit-${name}`} type=${type} value=${form[name]} onInput=${(e) => setForm({ ...form, [name]: e.target.value })} ...${extra} /></div>`;
  return html`
    <h1>Audit — ${tenant}</h1>
    <form class="search" onSubmit=${(e) => { e.preventDefault(); search(''); }}>
      ${field('from', 'From', 'datetime-local')}
      ${field('to', 'To', 'datetime-local')}
      ${field('key_id', 'Key id', 'text', { placeholder: 'k_…' })}
      ${field('model', 'Model')}
      <div class="field"><label for="audit-outcome">Outcome</label>
        <select id="audit-outcome" value=${form.outcome} onChange=${(e) => setForm({ ...form, outcome: e.target.value })}>
          <option value="">any</option><option value="ok">ok</option><option value="refused">refused</option><option value="error">error</option><option value="partial">partial</option>
        </select></div>
      ${field('operation', 'Operation', 'text', { placeholder: 'chat.completions or admin.*' })}
      <div class="field"><button type="submit" class="primary" disabled=${busy}>Search</button></div>
    </form>
    ${error && html`<p class="error" role="alert">${error.status === 403 ? 'Your roles do not allow searching the audit trail.' : `Search failed: ${error.message}${error.param ? ` (${error.param})` : ''}`}</p>`}
    ${result && html`
      <p class="note" aria-live="polite">${result.data.length} record(s) from ${result.batches_read} batch object(s)${result.listing_truncated ? '; the listing was cut short' : ''}.</p>
      <div class="scroll"><table class="audit-results"><caption>Matching records, newest first</caption>
        <thead><tr><th scope="col">When</th><th scope="col">Operation</th><th scope="col">Who</th><th scope="col">Key</th><th scope="col">Model</th><th scope="col">Provider</th><th scope="col">Outcome</th><th scope="col">Latency</th><th scope="col">Cost</th><th scope="col">Batch</th></tr></thead>
        <tbody>${result.data.map((item, i) => {
          const r = item.record;
          return html`<tr class="audit-row">
            <td>${when(r.timestamp_ms)}</td>
            <td>${r.operation}${r.admin && r.admin.changed_paths && r.admin.changed_paths.length ? html`<br /><small>${r.admin.changed_paths.join(', ')}</small>` : ''}</td>
            <td>${r.admin ? r.admin.subject : (r.actor || '')}</td>
            <td class="key">${r.key_id || ''}</td>
            <td class="model">${r.requested_model || ''}${r.served_model && r.served_model !== r.requested_model ? ` → ${r.served_model}` : ''}</td>
            <td>${r.provider || ''}</td>
            <td class=${`outcome-${r.outcome}`}>${r.outcome} ${r.status}${r.error_code ? html`<br /><small>${r.error_code}</small>` : ''}</td>
            <td>${int(r.latency_ms)} ms</td>
            <td>${usd(r.settled_usd_micros)}</td>
            <td><button type="button" aria-expanded=${open === i} onClick=${() => setOpen(open === i ? null : i)}>Verify…</button></td>
          </tr>${open === i ? html`<tr><td colspan="10"><${Verify} item=${item} /></td></tr>` : ''}`;
        })}</tbody>
      </table></div>
      ${result.next_cursor && html`<button type="button" disabled=${busy} onClick=${() => search(result.next_cursor)}>Load older records</button>`}`}`;
}
