// OpenAI wire format: Chat Completions (text and tool calls) and Embeddings.
// Reference: https://platform.openai.com/docs/api-reference/chat
//            https://platform.openai.com/docs/api-reference/chat/streaming
//            https://platform.openai.com/docs/guides/function-calling
//            https://platform.openai.com/docs/api-reference/embeddings
//            https://platform.openai.com/docs/guides/error-codes
import { BEHAVIOR_HEADER, behaviorFor, sleep } from './behaviors.mjs';
import {
  base64Floats, countWords, embeddingFor, limitPieces, mockId, planToolCalls, replyText, splitText, textOf, wordPieces,
} from './common.mjs';
import { dataEvent, openSse, sendCutJson, sendJson } from './sse.mjs';

export { sendJson };

const FINGERPRINT = 'fp_mock';
const MODELS = ['gpt-4o-mini', 'gpt-4o', 'mock-model', 'text-embedding-3-small'];
const MODELS_CREATED = 1700000000;
const EMBEDDING_DIMENSIONS = 16;

export function errorBody(message, type, code = null, param = null) {
  return { error: { message, type, param, code } };
}

export function sendError(res, status, message, type, code = null, param = null, headers = {}) {
  sendJson(res, status, errorBody(message, type, code, param), headers);
}

export function notFound(res, method, path) {
  sendError(res, 404, `Invalid URL (${method} ${path})`, 'invalid_request_error');
}

const STATUS_ERRORS = {
  401: () => ({ message: 'Incorrect API key provided: sk-mock. You can find your API key at https://platform.openai.com/account/api-keys.', type: 'invalid_request_error', code: 'invalid_api_key' }),
  403: () => ({ message: 'Country, region, or territory not supported', type: 'request_forbidden', code: 'unsupported_country_region_territory' }),
  404: (model) => ({ message: `The model \`${model}\` does not exist or you do not have access to it.`, type: 'invalid_request_error', code: 'model_not_found' }),
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
const statusError = (status, model) =>
  STATUS_ERRORS[status]?.(model) ?? { message: `Mock upstream status ${status}.`, type: 'server_error', code: null };

function listModels({ res }) {
  sendJson(res, 200, {
    object: 'list',
    data: MODELS.map((id) => ({ id, object: 'model', created: MODELS_CREATED, owned_by: 'mock' })),
  });
}

function requireBearer(req, res) {
  if (/^Bearer\s+\S/i.test(req.headers.authorization ?? '')) return true;
  sendError(
    res, 401,
    'Incorrect API key provided. You must provide an API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).',
    'invalid_request_error', 'invalid_api_key',
  );
  return false;
}

function parseBody(raw, res) {
  try {
    return JSON.parse(raw);
  } catch {
    sendError(res, 400, 'We could not parse the JSON body of your request. The OpenAI API expects a JSON payload.',
      'invalid_request_error', 'invalid_json');
    return undefined;
  }
}

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
  if (body.tools !== undefined) {
    if (!Array.isArray(body.tools)) return [400, 'Invalid type for \'tools\': expected an array.', 'invalid_type', 'tools'];
    const bad = body.tools.findIndex((t) => typeof t?.function?.name !== 'string');
    if (bad !== -1) return [400, `Missing required parameter: 'tools[${bad}].function.name'.`, 'missing_required_parameter', `tools[${bad}].function.name`];
  }
  return null;
}

/** Trailing role:"tool" messages' contents, or null when the last message is not a tool result. */
function trailingToolResults(messages) {
  const out = [];
  for (let i = messages.length - 1; i >= 0 && messages[i]?.role === 'tool'; i--) out.unshift(textOf(messages[i].content));
  return out.length ? out : null;
}

/** The tool calls to answer with, or null for a text reply. */
function toolCallsFor(body, behavior, n) {
  const tools = (body.tools ?? []).map((t) => ({ name: t.function.name, schema: t.function.parameters }));
  if (tools.length === 0 || body.tool_choice === 'none' || trailingToolResults(body.messages)) return null;
  const forced = body.tool_choice?.function?.name ?? null;
  return planToolCalls(tools, { forced, parallel: behavior.parallelTools }).map((c, i) => ({
    id: `call_${mockId(`openai/${n}/${i}`, 24)}`,
    name: c.name,
    arguments: JSON.stringify(c.args),
  }));
}

/**
 * The deterministic reply. `pieces` are the streamed content deltas: each word
 * with its trailing whitespace, so pieces.join('') === content exactly.
 * With tool calls, `toolCalls` holds them and each call's `argPieces`.
 */
export function buildReply(body, behavior, n = 0) {
  const promptTokens = Math.max(1, body.messages.reduce((k, m) => k + countWords(textOf(m?.content)), 0));
  const usage = (completion) => ({
    prompt_tokens: promptTokens,
    completion_tokens: completion,
    total_tokens: promptTokens + completion,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  });
  const calls = toolCallsFor(body, behavior, n);
  if (calls) {
    const toolCalls = calls.map((c) => ({ ...c, argPieces: splitText(c.arguments) }));
    const completion = toolCalls.reduce((k, c) => k + 1 + c.argPieces.length, 0);
    return { content: null, pieces: [], toolCalls, finishReason: 'tool_calls', usage: usage(completion) };
  }
  const lastUser = body.messages.findLast((m) => m?.role === 'user');
  const text = replyText({
    lastUserText: textOf(lastUser?.content),
    toolResults: trailingToolResults(body.messages),
    behavior,
  });
  const { pieces, truncated } = limitPieces(wordPieces(text), body.max_completion_tokens ?? body.max_tokens);
  return {
    content: pieces.join(''),
    pieces,
    toolCalls: null,
    finishReason: truncated ? 'length' : 'stop',
    usage: usage(pieces.length),
  };
}

/** Auth, JSON, behaviour, slow-first-byte and status misbehaviour shared by both endpoints. */
async function prologue({ req, res, raw, state, signal }, validateBody) {
  if (!requireBearer(req, res)) return null;
  const body = parseBody(raw, res);
  if (body === undefined) return null;
  const invalid = validateBody(body);
  if (invalid) {
    const [status, message, code, param] = invalid;
    sendError(res, status, message, 'invalid_request_error', code, param);
    return null;
  }
  const lastUser = Array.isArray(body.messages) ? body.messages.findLast((m) => m?.role === 'user') : null;
  const behavior = behaviorFor({
    model: body.model,
    header: req.headers[BEHAVIOR_HEADER],
    lastUserText: textOf(lastUser?.content),
  });
  await sleep(behavior.slowFirstByteMs, signal);
  const n = ++state.counter;
  const headers = { 'x-request-id': `req_mock_${n}` };
  if (behavior.status) {
    const e = statusError(behavior.status, body.model);
    sendError(res, behavior.status, e.message, e.type, e.code, null, { ...headers, ...e.headers });
    return null;
  }
  return { body, behavior, n, headers };
}

async function chatCompletions(ctx) {
  const ready = await prologue(ctx, validate);
  if (!ready) return;
  const { body, behavior, n, headers } = ready;
  const { res, signal } = ctx;
  const reply = buildReply(body, behavior, n);
  const base = {
    id: `chatcmpl-mock-${n}`,
    created: Math.floor(Date.now() / 1000),
    model: body.model,
    system_fingerprint: FINGERPRINT,
  };
  if (body.stream === true) return stream({ res, body, behavior, reply, base, headers, signal });

  const message = reply.toolCalls
    ? {
      role: 'assistant',
      content: null,
      tool_calls: reply.toolCalls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })),
      refusal: null,
    }
    : { role: 'assistant', content: reply.content, refusal: null };
  const completion = {
    id: base.id,
    object: 'chat.completion',
    created: base.created,
    model: base.model,
    system_fingerprint: base.system_fingerprint,
    choices: [{ index: 0, message, logprobs: null, finish_reason: reply.finishReason }],
    usage: reply.usage,
  };
  if (behavior.cutStream) return sendCutJson(res, 200, completion, headers);
  sendJson(res, 200, completion, headers);
}

/** The deltas after the first one: content words, or tool-call headers and argument pieces. */
function streamDeltas(reply) {
  if (!reply.toolCalls) {
    return {
      first: { role: 'assistant', content: '', refusal: null },
      rest: reply.pieces.map((content) => ({ content })),
    };
  }
  const deltas = [];
  reply.toolCalls.forEach((c, index) => {
    deltas.push({ tool_calls: [{ index, id: c.id, type: 'function', function: { name: c.name, arguments: '' } }] });
    for (const piece of c.argPieces) deltas.push({ tool_calls: [{ index, function: { arguments: piece } }] });
  });
  const [header, ...rest] = deltas;
  return { first: { role: 'assistant', content: null, ...header, refusal: null }, rest };
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
  const sse = openSse(res, { headers, behavior, signal });
  const { first, rest } = streamDeltas(reply);

  await sse.emit(dataEvent(chunk(first)));
  for (const [i, delta] of rest.entries()) {
    await sse.emit(dataEvent(chunk(delta)));
    if (behavior.cutStream && i === 1) return sse.cut();
    if (i === 0 && behavior.malformedChunk) await sse.emit('data: {"id": "broken\n\n');
    if (i === 0 && behavior.errorEvent) {
      await sse.emit('data: {"error":{"message":"mock upstream error mid-stream","type":"server_error","param":null,"code":null}}\n\n');
      return sse.end();
    }
  }
  if (behavior.cutStream) return sse.cut();
  await sse.emit(dataEvent(chunk({}, reply.finishReason)));
  if (includeUsage) await sse.emit(dataEvent({ ...chunk({}), choices: [], usage: reply.usage }));
  await sse.emit('data: [DONE]\n\n');
  sse.end();
}

/** Returns [status, message, code, param] for an invalid embeddings request, or null. */
function validateEmbeddings(body) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return [400, 'We could not parse the JSON body of your request: expected a JSON object.', 'invalid_json', null];
  }
  if (typeof body.model !== 'string') return [400, 'Missing required parameter: \'model\'.', 'missing_required_parameter', 'model'];
  const input = body.input;
  const ok = typeof input === 'string' || (Array.isArray(input) && input.length > 0 &&
    input.every((x) => typeof x === 'string' || Number.isInteger(x) || (Array.isArray(x) && x.every(Number.isInteger))));
  if (!ok) return [400, '\'$.input\' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.', 'invalid_value', 'input'];
  if (body.encoding_format !== undefined && !['float', 'base64'].includes(body.encoding_format)) {
    return [400, `Invalid value: '${body.encoding_format}'. Supported values are: 'float' and 'base64'.`, 'invalid_value', 'encoding_format'];
  }
  if (body.dimensions !== undefined && !(Number.isInteger(body.dimensions) && body.dimensions >= 1 && body.dimensions <= 3072)) {
    return [400, 'Invalid \'dimensions\': expected an integer between 1 and 3072.', 'invalid_value', 'dimensions'];
  }
  return null;
}

async function embeddings(ctx) {
  const ready = await prologue(ctx, validateEmbeddings);
  if (!ready) return;
  const { body, headers } = ready;
  // One input may be a string, an array of token ids, or an array of those.
  const inputs = typeof body.input === 'string' || body.input.every(Number.isInteger) ? [body.input] : body.input;
  const dims = body.dimensions ?? EMBEDDING_DIMENSIONS;
  const tokens = inputs.reduce((k, x) => k + (typeof x === 'string' ? countWords(x) : x.length), 0);
  const data = inputs.map((x, index) => {
    const vector = embeddingFor(typeof x === 'string' ? x : x.join(' '), dims);
    return { object: 'embedding', index, embedding: body.encoding_format === 'base64' ? base64Floats(vector) : vector };
  });
  sendJson(ctx.res, 200, { object: 'list', data, model: body.model, usage: { prompt_tokens: tokens, total_tokens: tokens } }, headers);
}

/** "METHOD /path" -> handler({req, res, raw, state, signal}). */
export const routes = {
  'GET /v1/models': listModels,
  'POST /v1/chat/completions': chatCompletions,
  'POST /v1/embeddings': embeddings,
};
