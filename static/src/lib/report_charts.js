// The model report's charts, drawn with uPlot: curves whose points each have their own x (ROC, PR,
// lift), histograms (bars) and a scatter. Several curves share one x axis by merging their points
// into one sorted x array where each curve is null outside its own points (lines span the gaps),
// so a ROC curve keeps its vertical steps (equal x, rising y).
import uPlot from "uplot";

import { el } from "./dom.js";

export const COLORS = ["#2563eb", "#ea580c", "#15803d", "#9333ea", "#db2777", "#0891b2", "#ca8a04", "#4b5563"];
export const GUIDE_COLOR = "#94a3b8";
const HEIGHT = 300;

// curves: [{x: [...], y: [...]}] -> uPlot data [xs, ys1, ys2, ...].
export function mergeCurves(curves) {
  const points = [];
  curves.forEach((curve, index) => {
    curve.x.forEach((x, position) => {
      if (x !== null && curve.y[position] !== null) points.push({ x, y: curve.y[position], index, position });
    });
  });
  points.sort((a, b) => a.x - b.x || a.index - b.index || a.position - b.position);
  const xs = points.map((p) => p.x);
  const series = curves.map((_, index) => points.map((p) => (p.index === index ? p.y : null)));
  return [xs, ...series];
}

function chartWidth(container) {
  return Math.max(280, Math.min(760, Math.floor(container.clientWidth || 640)));
}

const format = (value, digits = 3) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));

// A chart in `container` (a new child div). series: [{label, color, dash, points, paths, width}].
// Returns the uPlot instance; the chart follows its container's width.
export function drawChart(container, { title, xLabel, yLabel, data, series, x = {}, y = {}, hooks = {}, className = "" }) {
  const wrapper = el("div", { className: `report-chart ${className}`.trim() });
  container.append(wrapper);
  const options = {
    title,
    width: chartWidth(container),
    height: HEIGHT,
    scales: { x: { time: false, ...x }, y: { ...y } },
    axes: [{ label: xLabel }, { label: yLabel, size: 56 }],
    series: [
      { label: xLabel, value: (u, v) => format(v) },
      ...series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: s.width ?? 2,
        dash: s.dash,
        spanGaps: true,
        fill: s.fill,
        paths: s.paths,
        points: s.points ?? { show: false },
        value: (u, v) => format(v, s.digits ?? 3),
      })),
    ],
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
    hooks,
  };
  const plot = new uPlot(options, data, wrapper);
  const resizer = new ResizeObserver(() => {
    const width = chartWidth(container);
    if (container.offsetParent !== null && plot.width !== width) plot.setSize({ width, height: HEIGHT });
  });
  resizer.observe(container);
  return plot;
}

// Histogram bars: centers on x, one value per bar.
export function barPaths() {
  return uPlot.paths.bars({ size: [0.9, 64], align: 0 });
}

// Points only, no line: a scatter.
export function scatterSeries(label, color) {
  return { label, color, width: 0, paths: () => null, points: { show: true, size: 4, width: 0, fill: `${color}99` } };
}

// The same dashed, labelled line as the learning curves' kept epoch.
export { drawVerticalLine } from "./charts.js";

// Draws a ring at (x, y) in data units, labelled; for draw hooks (the threshold on the ROC curve).
export function drawMarker(plot, x, y, color, label) {
  if (x === null || y === null || x === undefined || y === undefined) return;
  const px = plot.valToPos(x, "x", true);
  const py = plot.valToPos(y, "y", true);
  if (!Number.isFinite(px) || !Number.isFinite(py)) return;
  const ratio = uPlot.pxRatio || 1;
  const ctx = plot.ctx;
  ctx.save();
  ctx.setLineDash([]); // uPlot leaves the last series' dash set
  ctx.strokeStyle = color;
  ctx.fillStyle = "#ffffff";
  ctx.lineWidth = 2.5 * ratio;
  ctx.beginPath();
  ctx.arc(px, py, 6 * ratio, 0, 2 * Math.PI);
  ctx.fill();
  ctx.stroke();
  if (label) {
    ctx.fillStyle = color;
    ctx.font = `600 ${11 * ratio}px system-ui, sans-serif`;
    ctx.textAlign = "left";
    ctx.fillText(label, px + 10 * ratio, py + 14 * ratio);
  }
  ctx.restore();
}
