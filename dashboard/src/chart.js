// Time-series charts with uPlot (canvas; no inline styles or scripts, so it runs under the
// strict Content-Security-Policy). Each chart has a text summary for screen readers and a
// table of its data behind a disclosure.
import { html } from './html.js';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];

/**
 * `xs`: bucket starts in ms; `series`: [{label, values}] (null for gaps). `format` renders a
 * y value for the table.
 */
export function Chart({ title, xs, series, format = String, height = 220 }) {
  const box = useRef(null);
  useEffect(() => {
    if (!box.current || xs.length === 0) return undefined;
    const width = Math.max(280, box.current.clientWidth);
    const opts = {
      width,
      height,
      series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: PALETTE[i % PALETTE.length], width: 2, points: { show: xs.length < 40 } }))],
      scales: { x: { time: true } },
      axes: [{}, { values: (_, ticks) => ticks.map((t) => format(t)), size: 96 }],
      legend: { show: true },
    };
    const plot = new uPlot(opts, [xs.map((x) => x / 1000), ...series.map((s) => s.values)], box.current);
    const observer = new ResizeObserver(() => {
      const w = Math.max(280, box.current ? box.current.clientWidth : width);
      plot.setSize({ width: w, height });
    });
    observer.observe(box.current);
    return () => { observer.disconnect(); plot.destroy(); };
  }, [JSON.stringify(xs), JSON.stringify(series)]);
  if (xs.length === 0) return html`<figure class="chart"><figcaption>${title}</figcaption><p class="empty">No data in this window.</p></figure>`;
  return html`
    <figure class="chart" aria-label=${title}>
      <figcaption>${title}</figcaption>
      <div ref=${box} class="plot" role="img" aria-label=${`${title}: ${series.map((s) => s.label).join(', ')} over ${xs.length} time buckets`}></div>
      <details>
        <summary>Data table</summary>
        <div class="scroll">
          <table>
            <thead><tr><th scope="col">Time</th>${series.map((s) => html`<th scope="col">${s.label}</th>`)}</tr></thead>
            <tbody>${xs.map((x, i) => html`<tr><td>${new Date(x).toLocaleString()}</td>${series.map((s) => html`<td>${s.values[i] == null ? '' : format(s.values[i])}</td>`)}</tr>`)}</tbody>
          </table>
        </div>
      </details>
    </figure>`;
}
