// Provider-neutral pieces of a mock reply: the reply text, tool calls, ids, embeddings.
import { createHash } from 'node:crypto';

export const countWords = (s) => String(s ?? '').match(/\S+/g)?.length ?? 0;

/** Text of OpenAI/Mistral/Anthropic content: a string, or an array of {type:"text", text} parts. */
export function textOf(content) {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .filter((p) => p?.type === 'text' && typeof p.text === 'string')
    .map((p) => p.text)
    .join('\n');
}

/** Each word with its trailing whitespace, so pieces.join('') is the text exactly. */
export const wordPieces = (text) => text.match(/\s*\S+\s*/g) ?? [];

/** The reply's text: a quote of the last user text, of tool results, or long-<n> words. */
export function replyText({ lastUserText, toolResults, behavior }) {
  if (behavior.longWords !== null) {
    return Array.from({ length: behavior.longWords }, (_, i) => `word${i + 1}`).join(' ');
  }
  if (toolResults) return 'Mock reply to tool result: ' + clip(toolResults.join(' | '));
  return 'Mock reply to: ' + clip(lastUserText ?? '');
}

const clip = (s) => Array.from(s).slice(0, 200).join('');

/** Cut pieces to `limit` words; returns {pieces, truncated}. */
export function limitPieces(pieces, limit) {
  if (!Number.isInteger(limit) || limit < 1 || limit >= pieces.length) return { pieces, truncated: false };
  const cut = pieces.slice(0, limit);
  cut[limit - 1] = cut[limit - 1].trimEnd();
  return { pieces: cut, truncated: true };
}

/** Deterministic [A-Za-z0-9]{len} from a seed. */
export function mockId(seed, len) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  for (let round = 0; out.length < len; round++) {
    for (const byte of createHash('sha256').update(`${seed}/${round}`).digest()) {
      if (out.length === len) break;
      out += alphabet[byte % alphabet.length];
    }
  }
  return out;
}

const SAMPLE_STRINGS = ['Paris', 'London'];

/** A small value valid for a JSON schema (enough for the schemas tests use). */
function sampleFor(schema, variant) {
  if (!schema || typeof schema !== 'object') return SAMPLE_STRINGS[variant];
  if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum[variant % schema.enum.length];
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'integer': return 1 + variant;
    case 'number': return 1.5 + variant;
    case 'boolean': return variant === 0;
    case 'array': return [];
    case 'object': return argsFor(schema, variant);
    case 'null': return null;
    default: return SAMPLE_STRINGS[variant];
  }
}

/** Arguments object for a tool's parameters schema: every required property filled (or the first one). */
export function argsFor(schema, variant = 0) {
  const props = schema?.properties && typeof schema.properties === 'object' ? schema.properties : {};
  let names = Array.isArray(schema?.required) ? schema.required.filter((n) => typeof n === 'string') : [];
  if (names.length === 0) names = Object.keys(props).slice(0, 1);
  return Object.fromEntries(names.map((n) => [n, sampleFor(props[n], variant)]));
}

/**
 * Which tool calls to make. tools: [{name, schema}]; forced: a tool name or null;
 * parallel: two calls (the first two tools, or the first tool twice with other arguments).
 */
export function planToolCalls(tools, { forced = null, parallel = false } = {}) {
  const first = tools.find((t) => t.name === forced) ?? tools[0];
  const second = forced ? first : tools[1] ?? tools[0];
  const calls = [{ name: first.name, args: argsFor(first.schema, 0) }];
  if (parallel) calls.push({ name: second.name, args: argsFor(second.schema, 1) });
  return calls;
}

/** Split a JSON text into `n` roughly equal pieces (streamed argument deltas). */
export function splitText(text, n = 3) {
  const size = Math.max(1, Math.ceil(text.length / n));
  const out = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out.length ? out : [''];
}

/** Deterministic unit vector for an input text (float32 values). */
export function embeddingFor(text, dimensions) {
  const raw = [];
  for (let round = 0; raw.length < dimensions; round++) {
    const digest = createHash('sha256').update(`${round}:${text}`).digest();
    for (let i = 0; i + 1 < digest.length && raw.length < dimensions; i += 2) {
      raw.push(digest.readUInt16LE(i) / 32767.5 - 1);
    }
  }
  const norm = Math.hypot(...raw) || 1;
  return raw.map((v) => Math.fround(v / norm));
}

/** Little-endian float32 base64, as OpenAI sends `encoding_format: "base64"`. */
export function base64Floats(values) {
  const buf = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => buf.writeFloatLE(v, i * 4));
  return buf.toString('base64');
}
