// API keys: list (never a secret or hash), mint (the secret is shown once), revoke. The buttons
// appear only for roles that may use them; the server checks again.
import { useState } from 'preact/hooks';
import { html } from '../html.js';
import { get, post } from '../api.js';
import { useLoad, Status } from '../load.js';
import { when, NOT_PUBLISHED } from '../format.js';

const SCOPES = ['chat', 'models', 'usage'];

/** A new key's secret, shown once until dismissed. */
function Secret({ minted, onDone, what }) {
  const [copied, setCopied] = useState(false);
  return html`<div class="secret" role="status">
    <p><strong>${what} ${minted.key ? minted.key.key_id : ''}.</strong> Copy the secret now: it is shown only once and ASC does not keep it.</p>
    <input class="secret-value" readonly value=${minted.secret} aria-label="The new key's secret" onFocus=${(e) => e.target.select()} />
    <button type="button" onClick=${async () => { await navigator.clipboard.writeText(minted.secret).catch(() => {}); setCopied(true); }}>${copied ? 'Copied' : 'Copy'}</button>
    <button type="button" onClick=${onDone}>I have stored it</button>
    ${minted.published === false && html`<p class="warn">${NOT_PUBLISHED}</p>`}
  </div>`;
}

function Mint({ tenant, onMinted }) {
  const [scopes, setScopes] = useState(['chat', 'models']);
  const [tags, setTags] = useState('');
  const [label, setLabel] = useState('');
  const [error, setError] = useState(null);
  const [minted, setMinted] = useState(null);
  async function submit(e) {
    e.preventDefault();
    setError(null);
    try {
      const body = { scopes, tags: tags.split(',').map((t) => t.trim()).filter(Boolean) };
      if (label.trim()) body.label = label.trim();
      const r = await post(`/tenants/${tenant}/keys`, body);
      setMinted(r.json);
      onMinted();
    } catch (err) {
      setError(`${err.message}${err.param ? ` (${err.param})` : ''}`);
    }
  }
  return html`<section aria-labelledby="mint-h"><h2 id="mint-h">Mint a key</h2>
    <form class="mint" onSubmit=${submit}>
      <fieldset><legend>Scopes</legend>
        ${SCOPES.map((s) => html`<label class="check"><input type="checkbox" name="scope" value=${s} checked=${scopes.includes(s)}
          onChange=${(e) => setScopes(e.target.checked ? [...scopes, s] : scopes.filter((x) => x !== s))} /> ${s}</label>`)}
      </fieldset>
      <div class="field"><label for="mint-tags">Tags (comma-separated)</label><input id="mint-tags" value=${tags} placeholder="bu:research" onInput=${(e) => setTags(e.target.value)} /></div>
      <div class="field"><label for="mint-label">Label</label><input id="mint-label" value=${label} maxlength="200" onInput=${(e) => setLabel(e.target.value)} /></div>
      <button type="submit" class="primary">Mint key</button>
    </form>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${minted && html`<${Secret} minted=${minted} what="Key minted:" onDone=${() => setMinted(null)} />`}
  </section>`;
}

export function Keys({ tenant, can }) {
  const [reloadKey, setReloadKey] = useState(0);
  const load = useLoad(async () => (can['key.list'] ? (await get(`/tenants/${tenant}/keys`)).json : null), [tenant, reloadKey]);
  const [error, setError] = useState(null);
  const [rotated, setRotated] = useState(null);
  const [unpublished, setUnpublished] = useState(null);
  // Pages after the first (the API lists 100 keys a page, newest first), for this load. An
  // action (mint, rotate, revoke) loads the first page again.
  const [more, setMore] = useState({ of: null, keys: [], page: null });
  const shown = load.data && more.of === load.data ? [...load.data.keys, ...more.keys] : load.data?.keys;
  const last = load.data && more.of === load.data && more.page ? more.page : load.data;
  const showMore = async () => {
    setError(null);
    try {
      const page = (await get(`/tenants/${tenant}/keys?after=${encodeURIComponent(last.last_id)}`)).json;
      const earlier = more.of === load.data ? more.keys : [];
      setMore({ of: load.data, keys: [...earlier, ...page.keys], page });
    } catch (e) {
      setError(e.message);
    }
  };
  const rotate = async (id) => {
    if (!confirm(`Rotate key ${id}? A replacement is minted now; the old key keeps working for one day.`)) return;
    setError(null);
    try {
      const r = await post(`/tenants/${tenant}/keys/${id}/rotate`, { overlap_seconds: 86400 });
      setRotated(r.json);
      setReloadKey(reloadKey + 1);
    } catch (e) {
      setError(e.message);
    }
  };
  const revoke = async (id) => {
    if (!confirm(`Revoke key ${id}? Requests with it are refused from now on.`)) return;
    setError(null);
    try {
      const r = await post(`/tenants/${tenant}/keys/${id}/revoke`, {});
      setUnpublished(r.json.published === false ? `Key ${id} is revoked in the admin store. ${NOT_PUBLISHED}` : null);
      setReloadKey(reloadKey + 1);
    } catch (e) {
      setError(e.message);
    }
  };
  return html`
    <h1>Keys — ${tenant}</h1>
    ${can['key.list'] === 'own_keys' && html`<p class="note">Your role lists and acts on the keys you minted.</p>`}
    <${Status} load=${load} what="keys" />
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${unpublished && html`<p class="warn" role="status">${unpublished}</p>`}
    ${rotated && html`<${Secret} minted=${rotated} what=${`Replacement for ${rotated.retired ? rotated.retired.key_id : 'the key'}:`} onDone=${() => setRotated(null)} />`}
    ${load.data && html`<div class="scroll"><table class="keys"><caption>Keys (no secrets are kept or shown)</caption>
      <thead><tr><th scope="col">Key id</th><th scope="col">Label</th><th scope="col">Scopes</th><th scope="col">Tags</th><th scope="col">Status</th><th scope="col">Minted by</th><th scope="col">Minted</th><th scope="col">Expires</th>${(can['key.revoke'] || can['key.rotate']) && html`<th scope="col">Actions</th>`}</tr></thead>
      <tbody>${shown.map((k) => html`<tr>
        <th scope="row"><code>${k.key_id}</code></th><td>${k.label || ''}</td><td>${k.scopes.join(', ')}</td><td>${k.tags.join(', ')}</td>
        <td>${k.status}${k.rotated_to ? ` → ${k.rotated_to}` : ''}</td><td>${k.created_by}</td><td>${when(k.created_ms)}</td><td>${when(k.expires_ms)}</td>
        ${(can['key.revoke'] || can['key.rotate']) && html`<td class="actions">${k.status === 'active' ? html`
          ${can['key.rotate'] && !k.rotated_to && html`<button type="button" onClick=${() => rotate(k.key_id)}>Rotate<span class="sr"> ${k.key_id}</span></button>`}
          ${can['key.revoke'] && html`<button type="button" class="danger" onClick=${() => revoke(k.key_id)}>Revoke<span class="sr"> ${k.key_id}</span></button>`}` : ''}</td>`}
      </tr>`)}</tbody></table></div>
      ${last.has_more && html`<p><button type="button" onClick=${showMore}>Show more keys</button></p>`}`}
    ${can['key.mint'] && html`<${Mint} tenant=${tenant} onMinted=${() => setReloadKey(reloadKey + 1)} />`}`;
}
