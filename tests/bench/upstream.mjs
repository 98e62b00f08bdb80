// A fast OpenAI-shaped upstream for the gateway benchmark: canned answers, no parsing, no state.
// (tests/mock-upstream is the faithful mock for correctness; it would be the bottleneck here.)
//   POST .../chat/completions  -> a canned chat completion (JSON), or with "stream": true a canned
//                                 SSE stream: the first chunk at once, the rest STREAM_GAP_MS later
//                                 (so a gateway that buffers the stream shows it in its TTFB).
//   GET  .../models, /healthz  -> small canned answers.
//   node tests/bench/upstream.mjs PORT   (prints "listening PORT" when ready)
import http from 'node:http';

const GAP_MS = Number(process.env.STREAM_GAP_MS ?? 10);
const created = 1767225600;
const completion = Buffer.from(JSON.stringify({
  id: 'chatcmpl-bench', object: 'chat.completion', created, model: 'gpt-4o-mini-2024-07-18',
  system_fingerprint: 'fp_bench',
  choices: [{ index: 0, message: { role: 'assistant', content: 'Benchmarks compare like with like: same upstream, same body, same machine.', refusal: null }, logprobs: null, finish_reason: 'stop' }],
  usage: { prompt_tokens: 64, completion_tokens: 16, total_tokens: 80 },
}));
const chunk = (delta, finish = null) => `data: ${JSON.stringify({
  id: 'chatcmpl-bench', object: 'chat.completion.chunk', created, model: 'gpt-4o-mini-2024-07-18',
  system_fingerprint: 'fp_bench', choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
})}\n\n`;
const words = 'Benchmarks compare like with like: same upstream, same body, same machine.'.split(/(?= )/);
const streamHead = Buffer.from(chunk({ role: 'assistant', content: '' }) + chunk({ content: words[0] }));
const streamTail = Buffer.from(words.slice(1).map((w) => chunk({ content: w })).join('') + chunk({}, 'stop'));
const usageChunk = Buffer.from(`data: ${JSON.stringify({
  id: 'chatcmpl-bench', object: 'chat.completion.chunk', created, model: 'gpt-4o-mini-2024-07-18',
  system_fingerprint: 'fp_bench', choices: [], usage: { prompt_tokens: 64, completion_tokens: 16, total_tokens: 80 },
})}\n\n`);
const done = Buffer.from('data: [DONE]\n\n');
const models = Buffer.from(JSON.stringify({ object: 'list', data: [{ id: 'gpt-4o-mini', object: 'model', created, owned_by: 'bench' }] }));

const server = http.createServer({ noDelay: true, keepAliveTimeout: 60_000 }, (req, res) => {
  const parts = [];
  req.on('data', (d) => parts.push(d));
  req.on('end', () => {
    const path = req.url.split('?')[0];
    if (req.method === 'POST' && path.endsWith('/chat/completions')) {
      const body = Buffer.concat(parts).toString('latin1');
      if (/"stream"\s*:\s*true/.test(body)) {
        const usage = /"include_usage"\s*:\s*true/.test(body);
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.write(streamHead);
        setTimeout(() => {
          res.write(streamTail);
          if (usage) res.write(usageChunk);
          res.end(done);
        }, GAP_MS);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': completion.length });
      return res.end(completion);
    }
    if (req.method === 'GET' && path.endsWith('/models')) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': models.length });
      return res.end(models);
    }
    if (path === '/healthz') return res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    const err = Buffer.from(JSON.stringify({ error: { message: `no route ${req.method} ${path}`, type: 'invalid_request_error' } }));
    res.writeHead(404, { 'content-type': 'application/json', 'content-length': err.length }).end(err);
  });
});
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
process.on('SIGTERM', () => process.exit(0));
