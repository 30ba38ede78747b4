// Sparklines as inline SVG: no library, one <path> per series.
"use strict";

/** An SVG element of `tag` with `attrs`. */
function svgEl(tag, attrs) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

/**
 * A chart of `points` (`{at, value}` with `value` a number or null, oldest
 * first) over the last `minutes`, in `color`; gaps where a value is missing.
 * Returns an <svg>.
 */
function sparkline(points, minutes, color, testId) {
  const w = 300, h = 60, pad = 4;
  const svg = svgEl("svg", { viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "none", "data-testid": testId });
  const values = points.filter((p) => p.value !== null && p.value !== undefined);
  if (values.length === 0) {
    const t = svgEl("text", { x: 8, y: 34, class: "empty" });
    t.textContent = "no samples yet";
    svg.appendChild(t);
    return svg;
  }
  // The window, or less when the samples start later (a young stack): the
  // label says which span is drawn.
  const end = Date.now(), first = Date.parse(values[0].at);
  const start = Math.max(end - minutes * 60000, Math.min(first, end - 60000));
  const max = Math.max(...values.map((p) => p.value)), min = Math.min(0, ...values.map((p) => p.value));
  const span = max - min || 1;
  const x = (at) => pad + ((Date.parse(at) - start) / (end - start)) * (w - 2 * pad);
  const y = (v) => h - pad - ((v - min) / span) * (h - 2 * pad);
  let d = "", pen = "M";
  for (const p of points) {
    if (p.value === null || p.value === undefined) { pen = "M"; continue; }
    d += `${pen}${x(p.at).toFixed(1)},${y(p.value).toFixed(1)} `;
    pen = "L";
  }
  svg.appendChild(svgEl("path", { d: d.trim(), class: "line", stroke: color, "data-points": values.length }));
  const label = svgEl("text", { x: w - 6, y: 14, "text-anchor": "end", class: "empty" });
  label.textContent = `max ${max.toFixed(max < 10 ? 2 : 0)} · ${Math.round((end - start) / 60000)} min`;
  svg.appendChild(label);
  return svg;
}
