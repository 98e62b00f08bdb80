// The ASC dashboard: a small Preact + htm app served at /admin by the Worker. Every number it
// shows comes from /admin/v1 under the signed-in person's roles; what they may not do is not
// offered here, and the server refuses it anyway.
import { render } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { html } from './html.js';
import { get, setUnauthorizedHandler } from './api.js';
import { completeSignIn, getToken, signIn, signOut } from './auth.js';
import { Spend } from './pages/spend.js';
import { Traffic } from './pages/traffic.js';
import { Routes } from './pages/routes.js';
import { Guardrails } from './pages/guardrails.js';
import { Audit } from './pages/audit.js';
import { Config } from './pages/config.js';
import { Keys } from './pages/keys.js';
import './style.css';

const PAGES = [
  { id: 'spend', title: 'Spend', needs: 'usage.read', view: Spend },
  { id: 'traffic', title: 'Traffic', needs: 'audit.search', alt: 'usage.read', view: Traffic },
  { id: 'routes', title: 'Routes', needs: 'route.read', view: Routes },
  { id: 'guardrails', title: 'Guardrails', needs: 'audit.search', alt: 'usage.read', view: Guardrails },
  { id: 'audit', title: 'Audit', needs: 'audit.search', view: Audit },
  { id: 'config', title: 'Config', needs: 'tenant.get', view: Config },
  { id: 'keys', title: 'Keys', needs: 'key.list', alt: 'key.mint', view: Keys },
];

/** What the person may do on `tenant`, from /admin/v1/me's `can` (platform admins: `*`). */
export function permissionsFor(me, tenant) {
  return { ...(me.can['*'] || {}), ...(me.can[tenant] || {}) };
}

function tenantsOf(me) {
  return Object.keys(me.can).filter((t) => t !== '*');
}

function readHash() {
  const [page, q] = location.hash.replace(/^#\/?/, '').split('?');
  return { page: page || '', tenant: new URLSearchParams(q || '').get('tenant') || '' };
}

function Login({ error }) {
  const [issuers, setIssuers] = useState(null);
  const [failure, setFailure] = useState(error);
  useEffect(() => {
    get('/login').then((r) => setIssuers(r.json.issuers)).catch((e) => setFailure(e.message));
  }, []);
  return html`
    <main id="main" class="login">
      <h1>ASC dashboard</h1>
      <p>Sign in with your company's identity provider. What you see depends on your roles.</p>
      ${failure && html`<p class="error" role="alert">${failure}</p>`}
      ${issuers && issuers.length === 0 && html`<p>This deployment offers no dashboard sign-in (no issuer has a <code>dashboard_client_id</code>).</p>`}
      ${(issuers || []).map((i) => html`
        <button type="button" class="primary" onClick=${() => signIn(i).catch((e) => setFailure(e.message))}>
          Sign in with ${new URL(i.issuer).host}
        </button>`)}
    </main>`;
}

function App() {
  const [me, setMe] = useState(null);
  const [state, setState] = useState('loading');
  const [error, setError] = useState(null);
  const [route, setRoute] = useState(readHash());

  useEffect(() => {
    setUnauthorizedHandler(() => { setMe(null); setState('login'); setError('Your session ended; sign in again.'); });
    const onHash = () => setRoute(readHash());
    addEventListener('hashchange', onHash);
    (async () => {
      try {
        await completeSignIn();
      } catch (e) {
        setError(e.message);
      }
      try {
        // With a token, or behind Cloudflare Access (which adds its own assertion).
        const r = await get('/me');
        setMe(r.json);
        setState('ready');
      } catch (e) {
        if (e.status !== 401) setError(e.message);
        setState('login');
      }
    })();
    return () => removeEventListener('hashchange', onHash);
  }, []);

  // The tab's title names the page; after navigating (not on the first load) focus moves to
  // the new page's content, so keyboard and screen-reader users start there. A layout effect
  // moves it in the same commit that shows the page: no frame where the page is there and the
  // focus is still on the old link.
  const previous = useRef(null);
  const shown = `${route.page}/${route.tenant}`;
  useLayoutEffect(() => {
    if (state !== 'ready') return;
    const p = PAGES.find((x) => x.id === route.page);
    document.title = `${p ? p.title : 'Dashboard'}${route.tenant ? ` — ${route.tenant}` : ''} — ASC`;
    if (previous.current !== null && previous.current !== shown) document.getElementById('main')?.focus();
    previous.current = shown;
  }, [shown, state]);

  if (state === 'loading') return html`<main id="main"><p aria-busy="true">Loading…</p></main>`;
  if (state === 'login' || !me) return html`<${Login} error=${error} />`;

  const tenants = tenantsOf(me);
  const tenant = route.tenant || tenants[0] || '';
  const can = permissionsFor(me, tenant);
  const pages = PAGES.filter((p) => can[p.needs] || (p.alt && can[p.alt]));
  const page = pages.find((p) => p.id === route.page) || pages[0];
  const go = (id, t = tenant) => { location.hash = `#/${id}?tenant=${encodeURIComponent(t)}`; };
  const View = page && page.view;

  return html`
    <a class="skip" href="#main">Skip to content</a>
    <header class="top">
      <span class="brand">ASC</span>
      <form class="tenant" onSubmit=${(e) => { e.preventDefault(); go(page ? page.id : '', e.target.elements.tenant.value.trim()); }}>
        <label for="tenant">Tenant</label>
        <input id="tenant" name="tenant" list="tenant-list" value=${tenant} required pattern="[a-z0-9_\\-]{1,64}" size="12" />
        <datalist id="tenant-list">${tenants.map((t) => html`<option value=${t} />`)}</datalist>
        <button type="submit">Open</button>
      </form>
      <span class="who" title=${me.issuer}>${me.subject} <small>(${me.roles.join(', ')})</small></span>
      <button type="button" onClick=${signOut}>Sign out</button>
    </header>
    <nav aria-label="Pages">
      <ul>
        ${pages.map((p) => html`<li><a href=${`#/${p.id}?tenant=${encodeURIComponent(tenant)}`} aria-current=${p === page ? 'page' : undefined}>${p.title}</a></li>`)}
      </ul>
    </nav>
    <main id="main" tabindex="-1">
      ${!tenant && html`<p>Enter a tenant to open.</p>`}
      ${tenant && !page && html`<p>Your roles give you nothing to see on tenant <strong>${tenant}</strong>.</p>`}
      ${tenant && View && html`<${View} key=${`${page.id}/${tenant}`} tenant=${tenant} can=${can} me=${me} />`}
    </main>`;
}

render(html`<${App} />`, document.getElementById('app'));
