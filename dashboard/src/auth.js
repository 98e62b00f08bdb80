// Signing in: OpenID Connect authorization code flow with PKCE (RFC 7636) in the browser, with
// the issuer and client id the deployment publishes at /admin/v1/login. The ID token is kept in
// sessionStorage (this tab only, gone when it closes) and sent as a bearer token; the server
// verifies it on every call. Behind Cloudflare Access no sign-in is needed here.
const TOKEN = 'asc.admin.token';
const PENDING = 'asc.admin.pending';

export const getToken = () => sessionStorage.getItem(TOKEN);
export const clearToken = () => sessionStorage.removeItem(TOKEN);

const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
  .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const random = (n = 32) => b64url(crypto.getRandomValues(new Uint8Array(n)));

function redirectUri() {
  return `${location.origin}/admin/`;
}

async function discover(issuer) {
  const r = await fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
  if (!r.ok) throw new Error(`The identity provider's discovery document answered ${r.status}.`);
  const doc = await r.json();
  if (doc.issuer !== issuer) throw new Error('The discovery document names another issuer.');
  if (!doc.authorization_endpoint || !doc.token_endpoint) throw new Error('The identity provider offers no authorization code flow.');
  return doc;
}

/** Sends the browser to the issuer's sign-in page. */
export async function signIn({ issuer, client_id: clientId }) {
  const doc = await discover(issuer);
  const verifier = random(48);
  const challenge = b64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  const state = random(16);
  const nonce = random(16);
  sessionStorage.setItem(PENDING, JSON.stringify({ issuer, clientId, verifier, state, nonce, tokenEndpoint: doc.token_endpoint }));
  const url = new URL(doc.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri(),
    scope: 'openid profile email groups',
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
    nonce,
  }).toString();
  location.assign(url.toString());
}

function claims(jwt) {
  const part = jwt.split('.')[1] || '';
  const text = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(text, (c) => c.charCodeAt(0))));
}

/**
 * Finishes a sign-in when the issuer sent the browser back with `?code=&state=`: exchanges the
 * code (with the PKCE verifier) for tokens and keeps the ID token. Returns true if it did.
 */
export async function completeSignIn() {
  const params = new URLSearchParams(location.search);
  const code = params.get('code');
  const error = params.get('error');
  if (!code && !error) return false;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || 'null');
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, '', `${location.pathname}${location.hash}`);
  if (error) throw new Error(`Sign-in failed: ${error}`);
  if (!pending || params.get('state') !== pending.state) throw new Error('Sign-in failed: the state does not match; start again.');
  const r = await fetch(pending.tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectUri(),
      client_id: pending.clientId,
      code_verifier: pending.verifier,
    }),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok || !body.id_token) throw new Error(`Sign-in failed: the token endpoint answered ${r.status} ${body.error || ''}`);
  // The server verifies the signature; here only that this token answers our request.
  if (claims(body.id_token).nonce !== pending.nonce) throw new Error('Sign-in failed: the token answers another request.');
  sessionStorage.setItem(TOKEN, body.id_token);
  return true;
}

export function signOut() {
  clearToken();
  location.hash = '';
  location.reload();
}
