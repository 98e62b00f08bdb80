// The tenant's config: the current version, an editor that validates on the server and shows
// every error at its path, saving with If-Match (role-gated), and the history with who made
// each change and what changed.
import { useState, useRef } from 'preact/hooks';
import { html } from '../html.js';
import { get, api, post } from '../api.js';
import { useLoad, Status } from '../load.js';
import { when, NOT_PUBLISHED } from '../format.js';

/** The line of `text` where the member at `path` (`budgets[0].limit_usd_micros`) starts, best effort. */
export function lineOf(text, path) {
  let pos = 0;
  for (const seg of String(path).split(/[.[\]]/).filter(Boolean)) {
    if (/^\d+$/.test(seg)) continue;
    const at = text.indexOf(`"${seg}"`, pos);
    if (at < 0) break;
    pos = at;
  }
  return text.slice(0, pos).split('\n').length;
}

function Diff({ tenant, from, to }) {
  const load = useLoad(async () => (await get(`/tenants/${tenant}/diff/${from}/${to}`)).json, [tenant, from, to]);
  return html`<${Status} load=${load} what="the diff" />
    ${load.data && html`<div class="scroll"><table class="diff"><caption>Changes from version ${from} to ${to}</caption>
      <thead><tr><th scope="col">Path</th><th scope="col">Change</th><th scope="col">Before</th><th scope="col">After</th></tr></thead>
      <tbody>${load.data.changes.map((c) => html`<tr class=${`change-${c.change}`}><th scope="row"><code>${c.path}</code></th><td>${c.change}</td>
        <td><code>${c.before === undefined ? '' : JSON.stringify(c.before)}</code></td><td><code>${c.after === undefined ? '' : JSON.stringify(c.after)}</code></td></tr>`)}</tbody>
    </table></div>`}`;
}

function History({ tenant, reloadKey, current, canRollback, onRestored }) {
  const load = useLoad(async () => (await get(`/tenants/${tenant}/history`)).json, [tenant, reloadKey]);
  const [shown, setShown] = useState(null);
  const [failure, setFailure] = useState(null);
  const restore = async (version) => {
    if (!confirm(`Store version ${version}'s config as a new version?`)) return;
    setFailure(null);
    try {
      const r = await post(`/tenants/${tenant}/rollback`, { version }, { headers: { 'if-match': `"${current}"` } });
      onRestored(version, r.json.published !== false);
    } catch (e) {
      setFailure(`${e.message}${e.details ? ` ${e.details.map((d) => `${d.path}: ${d.message}`).join('; ')}` : ''}`);
    }
  };
  return html`<section aria-labelledby="history-h"><h2 id="history-h">History</h2>
    <${Status} load=${load} what="the history" />
    ${failure && html`<p class="error" role="alert">${failure}</p>`}
    ${load.data && html`<div class="scroll"><table class="history"><caption>Every stored version, newest first</caption>
      <thead><tr><th scope="col">Version</th><th scope="col">When</th><th scope="col">Who</th><th scope="col">Operation</th><th scope="col">SHA-256</th><th scope="col">Changes</th></tr></thead>
      <tbody>${[...load.data.versions].reverse().map((v) => html`<tr>
        <th scope="row">${v.version}</th><td>${when(v.at_ms)}</td><td class="author">${v.author.subject}</td>
        <td>${v.operation}${v.restored ? ` of ${v.restored}` : ''}</td><td><code>${v.sha256.slice(0, 12)}</code></td>
        <td>${v.version > 1 ? html`<button type="button" aria-expanded=${shown === v.version} onClick=${() => setShown(shown === v.version ? null : v.version)}>Diff with ${v.version - 1}</button>` : '—'}
          ${canRollback && String(v.version) !== String(current) && html` <button type="button" onClick=${() => restore(v.version)}>Restore</button>`}</td>
      </tr>`)}</tbody></table></div>
      ${shown && html`<${Diff} tenant=${tenant} from=${shown - 1} to=${shown} />`}`}
  </section>`;
}

/** The message after a change was stored: a warning when it is not in effect yet. */
function stored(text, published) {
  return published ? { kind: 'ok', text } : { kind: 'warn', text: `${text} ${NOT_PUBLISHED}` };
}

export function Config({ tenant, can }) {
  const [reloadKey, setReloadKey] = useState(0);
  const current = useLoad(async () => {
    const r = await get(`/tenants/${tenant}`);
    return { text: JSON.stringify(JSON.parse(r.text), null, 2), version: (r.headers.get('etag') || '').replace(/"/g, '') };
  }, [tenant, reloadKey]);
  const [draft, setDraft] = useState(null);
  const [problems, setProblems] = useState(null);
  const [message, setMessage] = useState(null);
  const area = useRef(null);
  const text = draft ?? (current.data ? current.data.text : '');
  const canEdit = can['tenant.validate'] || can['tenant.put'];

  async function send(method, path, headers) {
    setMessage(null);
    setProblems(null);
    const r = await api(method, path, { body: text, headers, allow: [400, 412, 428] });
    if (r.status >= 400) {
      const e = r.json.error;
      setProblems(e.details || [{ path: e.param || '', message: e.message }]);
      setMessage({ kind: 'error', text: e.details ? `${e.details.length} problem(s); nothing was stored. Each is shown at its path:` : e.message });
      return false;
    }
    return r;
  }
  const validate = async () => { if (await send('POST', `/tenants/${tenant}/validate`)) setMessage({ kind: 'ok', text: 'Valid: no errors.' }); };
  const save = async () => {
    const r = await send('PUT', `/tenants/${tenant}`, { 'if-match': `"${current.data.version}"` });
    if (r) { setMessage(stored(`Saved as version ${r.json.version.version}.`, r.json.published !== false)); setDraft(null); setReloadKey(reloadKey + 1); }
  };
  const goTo = (path) => {
    const line = lineOf(text, path);
    const lines = text.split('\n');
    const start = lines.slice(0, line - 1).join('\n').length + (line > 1 ? 1 : 0);
    area.current.focus();
    area.current.setSelectionRange(start, start + (lines[line - 1] || '').length);
  };

  return html`
    <h1>Config — ${tenant}</h1>
    <${Status} load=${current} what="the config" />
    ${current.data && html`<section aria-labelledby="config-h">
      <h2 id="config-h">Current version ${current.data.version}</h2>
      ${canEdit ? html`
        <label for="config-editor">Config (JSON)</label>
        <textarea id="config-editor" ref=${area} class="editor" spellcheck="false" rows="24"
          aria-invalid=${problems ? 'true' : 'false'} aria-describedby="config-problems"
          value=${text} onInput=${(e) => setDraft(e.target.value)}></textarea>
        <div id="config-problems" aria-live="polite">
          ${message && html`<p class=${message.kind} role=${message.kind === 'error' ? 'alert' : 'status'}>${message.text}</p>`}
          ${problems && html`<ul class="problems">${problems.map((p) => html`<li><button type="button" class="link" onClick=${() => goTo(p.path)}><code class="path">${p.path || '(document)'}</code> (line ${lineOf(text, p.path)})</button>: <span class="message">${p.message}</span></li>`)}</ul>`}
        </div>
        <div class="controls">
          ${can['tenant.validate'] && html`<button type="button" onClick=${validate}>Validate</button>`}
          ${can['tenant.put'] && html`<button type="button" class="primary" onClick=${save}>Save as a new version</button>`}
          ${draft !== null && html`<button type="button" onClick=${() => { setDraft(null); setProblems(null); setMessage(null); }}>Discard changes</button>`}
        </div>` : html`<pre class="config" tabindex="0" aria-label="Current config">${current.data.text}</pre>`}
    </section>`}
    ${can['tenant.history'] && current.data && html`<${History} tenant=${tenant} reloadKey=${reloadKey} current=${current.data.version}
      canRollback=${!!can['tenant.rollback']} onRestored=${(v, published) => { setMessage(stored(`Restored version ${v} as a new version.`, published)); setDraft(null); setReloadKey(reloadKey + 1); }} />`}`;
}
