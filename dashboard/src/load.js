import { useCallback, useEffect, useState } from 'preact/hooks';
import { html } from './html.js';

/** Runs `fn` when `deps` change: `{data, error, loading, reload}`. */
export function useLoad(fn, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const run = useCallback(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    fn().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error) => live && setState({ data: null, error, loading: false }),
    );
    return () => { live = false; };
  }, deps);
  useEffect(run, [run]);
  return { ...state, reload: run };
}

export function Status({ load, what }) {
  if (load.error) {
    const e = load.error;
    const denied = e.status === 403;
    return html`<p class=${denied ? 'notice' : 'error'} role="alert">${denied ? `Your roles do not allow reading ${what}.` : `Could not load ${what}: ${e.message}`}</p>`;
  }
  if (load.loading && !load.data) return html`<p aria-busy="true">Loading ${what}…</p>`;
  return null;
}

/** The time windows the pages offer. */
export const WINDOWS = [
  { id: '1h', label: 'Last hour', ms: 3600_000, bucket: 'hour' },
  { id: '24h', label: 'Last 24 hours', ms: 86_400_000, bucket: 'hour' },
  { id: '7d', label: 'Last 7 days', ms: 7 * 86_400_000, bucket: 'day' },
  { id: '30d', label: 'Last 30 days', ms: 30 * 86_400_000, bucket: 'day' },
];

export function WindowPicker({ value, onChange, id }) {
  return html`
    <label for=${id}>Window</label>
    <select id=${id} value=${value} onChange=${(e) => onChange(e.target.value)}>
      ${WINDOWS.map((w) => html`<option value=${w.id}>${w.label}</option>`)}
    </select>`;
}

export function SourceNote({ source, complete }) {
  if (source === 'analytics') return html`<p class="note">From the gateway's analytics.</p>`;
  return html`<p class="note">Derived from the newest audit records of the window${complete ? '' : ' (more exist than one look reads: figures are partial)'}; the analytics endpoint is not on this deployment yet.</p>`;
}
