// Money is micro-USD integers everywhere in ASC; shown as dollars.
export const usd = (micros) => (micros == null ? '' : `$${(Number(micros) / 1e6).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 6 })}`);
export const when = (ms) => (ms == null ? '' : new Date(Number(ms)).toLocaleString());
export const ms = (v) => (v == null ? '' : `${Math.round(Number(v) * 10) / 10} ms`);
export const pct = (a, b) => (b ? Math.min(999, Math.round((Number(a) / Number(b)) * 1000) / 10) : 0);
export const int = (v) => (v == null ? '' : Number(v).toLocaleString());
