// Money is micro-USD integers everywhere in ASC; shown as dollars.
export const usd = (micros) => (micros == null ? '' : `$${(Number(micros) / 1e6).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 6 })}`);
export const when = (ms) => (ms == null ? '' : new Date(Number(ms)).toLocaleString());
export const ms = (v) => (v == null ? '' : `${Math.round(Number(v) * 10) / 10} ms`);
export const pct = (a, b) => (b ? Math.min(999, Math.round((Number(a) / Number(b)) * 1000) / 10) : 0);
/**
 * What a change's reply with `published: false` means: the admin store has it (and the trail),
 * the config store the gateway reads refused it, and the gateway retries on its own.
 */
export const NOT_PUBLISHED = 'Not in effect yet: the gateway\'s config store refused the write. The change is stored and recorded, and the gateway retries on its own; until then requests see the previous records.';
export const int = (v) => (v == null ? '' : Number(v).toLocaleString());
