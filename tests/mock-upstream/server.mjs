// Mock LLM upstream for gateway end-to-end tests and local development.
//   node tests/mock-upstream/server.mjs [--port N] [--host 127.0.0.1]   (or MOCK_PORT=N)
import http from 'node:http';
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as anthropic from './anthropic.mjs';
import * as mistral from './mistral.mjs';
import * as openai from './openai.mjs';

// Provider modules export `routes` ("METHOD /path" -> handler) and `notFound(res, method, path)`.
const providers = [openai, anthropic, mistral];

async function readBody(req) {
  const parts = [];
  for await (const part of req) parts.push(part);
  return Buffer.concat(parts).toString('utf8');
}

function parseMaybeJson(raw) {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

async function handle(req, res, state, signal) {
  const raw = await readBody(req);
  const path = new URL(req.url, 'http://mock').pathname;

  // Control endpoints: no auth, and not recorded themselves.
  if (path === '/__mock/requests' && req.method === 'GET') return openai.sendJson(res, 200, state.requests);
  if (path === '/__mock/requests' && req.method === 'DELETE') {
    state.requests.length = 0;
    return res.writeHead(204).end();
  }

  state.requests.push({ method: req.method, path: req.url, headers: req.headers, bytes: Buffer.byteLength(raw), body: parseMaybeJson(raw) });

  // `/redirect/<path>` answers 307 to `<path>` on this server: a client that follows redirects
  // shows up here twice (the gateway must not: its egress gate approved only the first URL).
  if (path.startsWith('/redirect/')) {
    return res.writeHead(307, { location: req.url.slice('/redirect'.length) }).end();
  }
  if (path === '/healthz' && req.method === 'GET') {
    return res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  }
  for (const provider of providers) {
    const handler = provider.routes[`${req.method} ${path}`];
    if (handler) return handler({ req, res, raw, state, signal });
  }
  // Unknown paths answer in the error shape of the provider whose prefix they use.
  const owner = path.startsWith('/anthropic/') ? anthropic : path.startsWith('/mistral/') ? mistral : openai;
  owner.notFound(res, req.method, path);
}

/** Start a mock upstream. Resolves to {port, host, url, close(), requests}. */
export async function start({ port = 0, host = '127.0.0.1' } = {}) {
  const state = { requests: [], counter: 0 };
  const server = http.createServer((req, res) => {
    // Aborts pending delays/writes when the client goes away or we shut down.
    const ac = new AbortController();
    res.on('close', () => ac.abort());
    handle(req, res, state, ac.signal).catch((err) => {
      if (ac.signal.aborted || res.destroyed) return;
      if (res.headersSent) return res.destroy();
      openai.sendError(res, 500, `mock-upstream internal error: ${err.message}`, 'server_error');
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const actualPort = server.address().port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    port: actualPort,
    host,
    url: `http://${urlHost}:${actualPort}`,
    requests: state.requests,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function main() {
  const { values } = parseArgs({ options: { port: { type: 'string' }, host: { type: 'string' } } });
  const portText = values.port ?? process.env.MOCK_PORT ?? '0';
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) {
    console.error(`mock-upstream: invalid port ${JSON.stringify(portText)}`);
    process.exit(2);
  }
  const srv = await start({ port, host: values.host ?? '127.0.0.1' });
  console.log(`mock-upstream listening on ${srv.url}`);
  const stop = () => srv.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

const isMain = process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (isMain) {
  main().catch((err) => {
    console.error(`mock-upstream: ${err.message}`);
    process.exit(1);
  });
}
