// A local OIDC issuer for the admin plane's end-to-end tests: its own keys (RS256, ES256 and
// EdDSA, made with node:crypto), a JWKS endpoint the Worker fetches through its egress gate, and
// token signing (RFC 7515 compact JWS). The signing here is node's (OpenSSL), independent of the
// Rust verifier under test.
import { createServer } from 'node:http';
import { generateKeyPairSync, sign as nodeSign, createHmac, randomUUID } from 'node:crypto';

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

/**
 * Starts an issuer on 127.0.0.1. `issuer.token(claims, opts)` signs claims (defaults: this
 * issuer, audience `asc-admin`, 5 minutes) with the key for `opts.alg` (RS256 by default).
 */
export async function startIssuer({ audience = 'asc-admin' } = {}) {
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
  const server = createServer(async (req, res) => {
    if (req.url === '/jwks') {
      fetches += 1;
      send(res, 200, { keys: published });
    } else if (req.url === '/.well-known/openid-configuration') {
      send(res, 200, { issuer: url, jwks_uri: `${url}/jwks`, device_authorization_endpoint: `${url}/device`, token_endpoint: `${url}/token` });
    } else if (req.url === '/device' && req.method === 'POST') {
      const f = await form(req);
      const code = `dc-${randomUUID()}`;
      polls.set(code, { client: f.client_id, n: 0 });
      send(res, 200, { device_code: code, user_code: 'WDJB-MJHT', verification_uri: `${url}/activate`, interval: 1, expires_in: 60 });
    } else if (req.url === '/token' && req.method === 'POST') {
      const f = await form(req);
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
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
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

  return {
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
    /** The ADMIN_ISSUERS entry for this issuer with `roles` (group-to-role mappings). */
    config(roles) {
      return { issuer, audience, jwks_uri: `${url}/jwks`, roles };
    },
    close: () => new Promise((ok) => server.close(ok)),
  };
}
