// A local OIDC issuer for the admin plane's end-to-end tests: its own keys (RS256, ES256 and
// EdDSA, made with node:crypto), a JWKS endpoint the Worker fetches through its egress gate, and
// token signing (RFC 7515 compact JWS). The signing here is node's (OpenSSL), independent of the
// Rust verifier under test.
import { createServer } from 'node:http';
import { generateKeyPairSync, sign as nodeSign, createHmac, createHash, randomUUID } from 'node:crypto';

const b64 = (buf) => Buffer.from(buf).toString('base64url');

function makeKey(alg) {
  const kid = `${alg.toLowerCase()}-${randomUUID().slice(0, 8)}`;
  let pair;
  if (alg === 'RS256') pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  else if (alg === 'ES256') pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  else pair = generateKeyPairSync('ed25519');
  const jwk = { ...pair.publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
  return { alg, kid, privateKey: pair.privateKey, publicKey: pair.publicKey, jwk };
}

function signWith(key, signingInput) {
  const data = Buffer.from(signingInput);
  if (key.alg === 'RS256') return nodeSign('sha256', data, key.privateKey);
  // RFC 7518 §3.4: R || S, not DER.
  if (key.alg === 'ES256') return nodeSign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  return nodeSign(null, data, key.privateKey);
}

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The sign-in page of the authorization endpoint: one button per test user. */
function signInPage(params, users) {
  const hidden = Object.entries(params)
    .map(([k, v]) => `<input type="hidden" name="${escape(k)}" value="${escape(v)}">`).join('');
  const buttons = users.map((u, i) =>
    `<li><button type="submit" name="user" value="${i}">Sign in as ${escape(u.sub)} (${escape(u.groups.join(', ') || 'no groups')})</button></li>`).join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test identity provider</title></head>
<body><main><h1>Test identity provider</h1><form method="post" action="/authorize">${hidden}<ul>${buttons}</ul></form></main></body></html>`;
}

/**
 * Starts an issuer on 127.0.0.1. `issuer.token(claims, opts)` signs claims (defaults: this
 * issuer, audience `asc-admin`, 5 minutes) with the key for `opts.alg` (RS256 by default).
 * `users` ({sub, groups}) are offered on the sign-in page of the authorization code flow with
 * PKCE (RFC 7636; S256 only), which the dashboard uses; `issuer.users` can be changed later.
 */
export async function startIssuer({ audience = 'asc-admin', port = 0, users = [] } = {}) {
  const keys = { RS256: makeKey('RS256'), ES256: makeKey('ES256'), EdDSA: makeKey('EdDSA') };
  let published = Object.values(keys).map((k) => k.jwk);
  let fetches = 0;
  // The device authorization grant (RFC 8628): each device code is approved after one
  // `authorization_pending` poll, for the identity in `login`.
  const login = { sub: 'cli-user@example.com', groups: [] };
  const polls = new Map();
  const send = (res, status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const form = (req) => new Promise((ok) => {
    let data = '';
    req.on('data', (c) => { data += c; });
    req.on('end', () => ok(Object.fromEntries(new URLSearchParams(data))));
  });
  // Authorization codes: one use each, bound to the client, redirect URI and PKCE challenge.
  const codes = new Map();
  const cors = { 'access-control-allow-origin': '*' };
  const sendCors = (res, status, body) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...cors });
    res.end(JSON.stringify(body));
  };
  const server = createServer(async (req, res) => {
    const path = req.url.split('?')[0];
    if (req.url === '/jwks') {
      fetches += 1;
      send(res, 200, { keys: published });
    } else if (req.url === '/.well-known/openid-configuration') {
      sendCors(res, 200, { issuer: url, jwks_uri: `${url}/jwks`, device_authorization_endpoint: `${url}/device`,
        authorization_endpoint: `${url}/authorize`, token_endpoint: `${url}/token`,
        response_types_supported: ['code'], code_challenge_methods_supported: ['S256'],
        id_token_signing_alg_values_supported: ['RS256', 'ES256', 'EdDSA'] });
    } else if (path === '/authorize' && req.method === 'GET') {
      const q = Object.fromEntries(new URL(req.url, url).searchParams);
      if (q.response_type !== 'code' || !q.client_id || !q.redirect_uri || q.code_challenge_method !== 'S256' || !q.code_challenge) {
        res.writeHead(400, { 'content-type': 'text/plain' });
        res.end('invalid_request: response_type=code, client_id, redirect_uri and an S256 code_challenge are required');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(signInPage(q, api.users));
    } else if (path === '/authorize' && req.method === 'POST') {
      const f = await form(req);
      const user = api.users[Number(f.user)];
      if (!user) { res.writeHead(400); res.end('unknown user'); return; }
      const code = `ac-${randomUUID()}`;
      codes.set(code, { client: f.client_id, redirect: f.redirect_uri, challenge: f.code_challenge, nonce: f.nonce, user });
      const back = new URL(f.redirect_uri);
      back.searchParams.set('code', code);
      if (f.state) back.searchParams.set('state', f.state);
      res.writeHead(302, { location: back.toString() });
      res.end();
    } else if (req.url === '/token' && req.method === 'POST' && req.headers['content-type']?.startsWith('application/x-www-form-urlencoded') && (await peekGrant(req)) === 'authorization_code') {
      const f = req.parsedForm;
      const c = codes.get(f.code);
      codes.delete(f.code);
      const verified = c && createHash('sha256').update(f.code_verifier || '').digest('base64url') === c.challenge;
      if (!c || c.client !== f.client_id || c.redirect !== f.redirect_uri || !verified) {
        sendCors(res, 400, { error: 'invalid_grant' });
        return;
      }
      sendCors(res, 200, { token_type: 'Bearer', access_token: 'opaque-access-token', expires_in: 300,
        id_token: token({ sub: c.user.sub, groups: c.user.groups, aud: c.client, nonce: c.nonce }) });
    } else if (req.url === '/device' && req.method === 'POST') {
      const f = await form(req);
      const code = `dc-${randomUUID()}`;
      polls.set(code, { client: f.client_id, n: 0 });
      send(res, 200, { device_code: code, user_code: 'WDJB-MJHT', verification_uri: `${url}/activate`, interval: 1, expires_in: 60 });
    } else if (req.url === '/token' && req.method === 'POST') {
      const f = req.parsedForm ?? await form(req);
      const p = polls.get(f.device_code);
      if (f.grant_type !== 'urn:ietf:params:oauth:grant-type:device_code' || !p || p.client !== f.client_id) {
        send(res, 400, { error: 'invalid_grant' });
      } else if (p.n++ === 0) {
        send(res, 400, { error: 'authorization_pending' });
      } else {
        polls.delete(f.device_code);
        send(res, 200, { token_type: 'Bearer', access_token: 'opaque-access-token', expires_in: 300,
          id_token: token({ sub: login.sub, groups: login.groups, aud: f.client_id }) });
      }
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  async function peekGrant(req) {
    req.parsedForm = await form(req);
    return req.parsedForm.grant_type;
  }
  await new Promise((ok) => server.listen(port, '127.0.0.1', ok));
  const url = `http://127.0.0.1:${server.address().port}`;
  const issuer = url;

  function token(claims = {}, opts = {}) {
    const key = opts.key ?? keys[opts.alg ?? 'RS256'];
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: key.alg, kid: key.kid, typ: 'JWT', ...(opts.header ?? {}) };
    const body = { iss: issuer, aud: audience, iat: now, exp: now + 300, ...claims };
    for (const [k, v] of Object.entries(body)) if (v === undefined) delete body[k];
    const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(body))}`;
    return `${input}.${b64(signWith(key, input))}`;
  }

  const api = {
    users,
    url,
    issuer,
    audience,
    keys,
    login,
    get fetches() { return fetches; },
    token,
    /** A key of this issuer's kind that is not published (its tokens must fail). */
    strayKey: (alg = 'RS256') => makeKey(alg),
    /** Publishes a new key (an IdP's key rotation) and returns it. */
    rotate(alg = 'RS256') {
      const key = makeKey(alg);
      published = [...published, key.jwk];
      return key;
    },
    /** HS256 over the input, keyed with the RSA public key's PEM: the classic confusion attack. */
    hs256WithPublicKey(claims = {}) {
      const now = Math.floor(Date.now() / 1000);
      const header = { alg: 'HS256', kid: keys.RS256.kid, typ: 'JWT' };
      const body = { iss: issuer, aud: audience, iat: now, exp: now + 300, ...claims };
      const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(body))}`;
      const pem = keys.RS256.publicKey.export({ type: 'spki', format: 'pem' });
      return `${input}.${b64(createHmac('sha256', pem).update(input).digest())}`;
    },
    /** An unsigned token (`alg: none`). */
    unsigned(claims = {}) {
      const now = Math.floor(Date.now() / 1000);
      const body = { iss: issuer, aud: audience, exp: now + 300, ...claims };
      return `${b64(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64(JSON.stringify(body))}.`;
    },
    /**
     * The ADMIN_ISSUERS entry for this issuer with `roles` (group-to-role mappings); with
     * `dashboardClientId`, the dashboard signs in with it (and its ID tokens are accepted).
     */
    config(roles, { dashboardClientId } = {}) {
      if (!dashboardClientId) return { issuer, audience, jwks_uri: `${url}/jwks`, roles };
      return { issuer, audience: [audience, dashboardClientId], jwks_uri: `${url}/jwks`, roles, dashboard_client_id: dashboardClientId };
    },
    close: () => new Promise((ok) => { server.closeAllConnections?.(); server.close(ok); }),
  };
  return api;
}
