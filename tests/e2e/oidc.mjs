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
  const server = createServer((req, res) => {
    if (req.url === '/jwks') {
      fetches += 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: published }));
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
