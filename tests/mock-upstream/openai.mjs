// OpenAI Chat Completions wire format.
// Reference: https://platform.openai.com/docs/api-reference/chat
//            https://platform.openai.com/docs/api-reference/chat/streaming
//            https://platform.openai.com/docs/guides/error-codes
import { BEHAVIOR_HEADER, behaviorFor, sleep } from './behaviors.mjs';

const FINGERPRINT = 'fp_mock';
const MODELS = ['gpt-4o-mini', 'gpt-4o', 'mock-model'];
const MODELS_CREATED = 1700000000;

export function errorBody(message, type, code = null, param = null) {
  return { error: { message, type, param, code } };
}

export function sendJson(res, status, obj, headers = {}) {
  const buf = Buffer.from(JSON.stringify(obj));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': buf.length, ...headers });
  res.end(buf);
}

export function sendError(res, status, message, type, code = null, param = null, headers = {}) {
  sendJson(res, status, errorBody(message, type, code, param), headers);
}

export function notFound(res, method, path) {
  sendError(res, 404, `Invalid URL (${method} ${path})`, 'invalid_request_error');
}

const STATUS_ERRORS = {
  429: (model) => ({
    message:
      `Rate limit reached for ${model} in organization org-mock on requests per min (RPM): ` +
      'Limit 60, Used 60, Requested 1. Please try again in 2s.',
    type: 'requests',
    code: 'rate_limit_exceeded',
    headers: {
      'retry-after': '2',
      'retry-after-ms': '2000',
      'x-ratelimit-limit-requests': '60',
      'x-ratelimit-remaining-requests': '0',
      'x-ratelimit-reset-requests': '2s',
    },
  }),
  500: () => ({
    message: 'The server had an error while processing your request. Sorry about that!',
    type: 'server_error',
    code: null,
  }),
  503: () => ({
    message: 'The engine is currently overloaded, please try again later.',
    type: 'server_error',
    code: null,
  }),
};

function listModels({ res }) {
  sendJson(res, 200, {
    object: 'list',
    data: MODELS.map((id) => ({ id, object: 'model', created: MODELS_CREATED, owned_by: 'mock' })),
  });
}

/** Text of a message's content: a string, or an array of {type:"text", text} parts. */
function textOf(content) {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .filter((p) => p?.type === 'text' && typeof p.text === 'string')
    .map((p) => p.text)
    .join('\n');
}

const countWords = (s) => s.match(/\S+/g)?.length ?? 0;

/** Returns [status, message, code, param] for an invalid request, or null. */
function validate(body) {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    return [400, 'We could not parse the JSON body of your request: expected a JSON object.', 'invalid_json', null];
  }
  if (body.model === undefined) return [400, 'Missing required parameter: \'model\'.', 'missing_required_parameter', 'model'];
  if (typeof body.model !== 'string') return [400, 'Invalid type for \'model\': expected a string.', 'invalid_type', 'model'];
  if (body.messages === undefined) return [400, 'Missing required parameter: \'messages\'.', 'missing_required_parameter', 'messages'];
  if (!Array.isArray(body.messages)) return [400, 'Invalid type for \'messages\': expected an array.', 'invalid_type', 'messages'];
  if (body.messages.length === 0) {
    return [400, 'Invalid \'messages\': empty array. Expected an array with minimum length 1.', 'empty_array', 'messages'];
  }
  return null;
}

/**
 * The deterministic reply. `pieces` are the streamed content deltas: each word
 * with its trailing whitespace, so pieces.join('') === content exactly.
 */
export function buildReply(body, behavior) {
  const lastUser = body.messages.findLast((m) => m?.role === 'user');
  const text = behavior.longWords !== null
    ? Array.from({ length: behavior.longWords }, (_, i) => `word${i + 1}`).join(' ')
    : 'Mock reply to: ' + Array.from(textOf(lastUser?.content)).slice(0, 200).join('');
  let pieces = text.match(/\s*\S+\s*/g) ?? [];
  let finishReason = 'stop';
  const limit = body.max_completion_tokens ?? body.max_tokens;
  if (Number.isInteger(limit) && limit >= 1 && limit < pieces.length) {
    pieces = pieces.slice(0, limit);
    pieces[limit - 1] = pieces[limit - 1].trimEnd();
    finishReason = 'length';
  }
  const promptTokens = Math.max(1, body.messages.reduce((n, m) => n + countWords(textOf(m?.content)), 0));
  return {
    content: pieces.join(''),
    pieces,
    finishReason,
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: pieces.length,
      total_tokens: promptTokens + pieces.length,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: {
        reasoning_tokens: 0,
        audio_tokens: 0,
        accepted_prediction_tokens: 0,
        rejected_prediction_tokens: 0,
      },
    },
  };
}

async function chatCompletions({ req, res, raw, state, signal }) {
  if (!/^Bearer\s+\S/i.test(req.headers.authorization ?? '')) {
    return sendError(
      res, 401,
      'Incorrect API key provided. You must provide an API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).',
      'invalid_request_error', 'invalid_api_key',
    );
  }
  let body;
  try {
    body = JSON.parse(raw);
  } catch {
    return sendError(res, 400, 'We could not parse the JSON body of your request. The OpenAI API expects a JSON payload.',
      'invalid_request_error', 'invalid_json');
  }
  const invalid = validate(body);
  if (invalid) {
    const [status, message, code, param] = invalid;
    return sendError(res, status, message, 'invalid_request_error', code, param);
  }

  const lastUser = body.messages.findLast((m) => m?.role === 'user');
  const behavior = behaviorFor({
    model: body.model,
    header: req.headers[BEHAVIOR_HEADER],
    lastUserText: textOf(lastUser?.content),
  });
  await sleep(behavior.slowFirstByteMs, signal);

  const n = ++state.counter;
  const headers = { 'x-request-id': `req_mock_${n}` };
  if (behavior.status) {
    const e = STATUS_ERRORS[behavior.status](body.model);
    return sendError(res, behavior.status, e.message, e.type, e.code, null, { ...headers, ...e.headers });
  }

  const reply = buildReply(body, behavior);
  const base = {
    id: `chatcmpl-mock-${n}`,
    created: Math.floor(Date.now() / 1000),
    model: body.model,
    system_fingerprint: FINGERPRINT,
  };
  if (body.stream === true) return stream({ res, body, behavior, reply, base, headers, signal });

  const completion = {
    id: base.id,
    object: 'chat.completion',
    created: base.created,
    model: base.model,
    system_fingerprint: base.system_fingerprint,
    choices: [{
      index: 0,
      message: { role: 'assistant', content: reply.content, refusal: null },
      logprobs: null,
      finish_reason: reply.finishReason,
    }],
    usage: reply.usage,
  };
  if (!behavior.cutStream) return sendJson(res, 200, completion, headers);

  // Promise the whole body, deliver half of it, then drop the connection.
  const buf = Buffer.from(JSON.stringify(completion));
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': buf.length, ...headers });
  res.write(buf.subarray(0, buf.length >> 1), () => res.destroy());
}

async function stream({ res, body, behavior, reply, base, headers, signal }) {
  const includeUsage = body.stream_options?.include_usage === true;
  const chunk = (delta, finishReason = null) => ({
    id: base.id,
    object: 'chat.completion.chunk',
    created: base.created,
    model: base.model,
    system_fingerprint: base.system_fingerprint,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    ...(includeUsage ? { usage: null } : {}),
  });
  const event = (obj) => `data: ${JSON.stringify(obj)}\n\n`;

  // Each event resolves once handed to the socket: events go out one by one
  // (nothing buffered), long streams get backpressure, and cut-stream knows
  // the earlier chunks really left before it drops the connection.
  const write = (text) => new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    res.write(text, (err) => {
      signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    });
  });
  let first = true;
  const emit = async (text) => {
    if (!first) await sleep(behavior.slowStreamMs, signal);
    first = false;
    signal.throwIfAborted();
    await write(text);
  };
  const cut = () => res.destroy();

  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    ...headers,
  });
  res.flushHeaders();

  await emit(event(chunk({ role: 'assistant', content: '', refusal: null })));
  for (const [i, piece] of reply.pieces.entries()) {
    await emit(event(chunk({ content: piece })));
    if (behavior.cutStream && i === 1) return cut();
    if (i === 0 && behavior.malformedChunk) await emit('data: {"id": "broken\n\n');
    if (i === 0 && behavior.errorEvent) {
      await emit('data: {"error":{"message":"mock upstream error mid-stream","type":"server_error","param":null,"code":null}}\n\n');
      return res.end();
    }
  }
  if (behavior.cutStream) return cut();
  await emit(event(chunk({}, reply.finishReason)));
  if (includeUsage) await emit(event({ ...chunk({}), choices: [], usage: reply.usage }));
  await emit('data: [DONE]\n\n');
  res.end();
}

/** "METHOD /path" -> handler({req, res, raw, state, signal}). */
export const routes = {
  'GET /v1/models': listModels,
  'POST /v1/chat/completions': chatCompletions,
};
