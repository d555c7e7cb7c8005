// Learning curves: one uPlot chart per metric base name ("ROC AUC" draws "Train ROC AUC" and
// "Test ROC AUC"; Keras' "loss" draws "loss" and "val_loss"), x = epoch number.
// New epochs never reset a zoom the user made: a zoomed chart keeps its x window.
// The epoch whose weights the model kept is marked on every chart (a dashed line, "★ kept").
import uPlot from "uplot";

import { el } from "./dom.js";

const TRAIN_COLOR = "#2563eb";
const TEST_COLOR = "#ea580c";
const KEPT_COLOR = "#15803d";
const HEIGHT = 240;
const SERIES_PREFIXES = ["Train ", "Test ", "val_"];

export function metricBase(name) {
  const prefix = SERIES_PREFIXES.find((p) => name.startsWith(p) && name.length > p.length);
  return prefix ? name.slice(prefix.length) : name;
}

const isTestSeries = (name) => name.startsWith("Test ") || name.startsWith("val_");
const isPlatformSeries = (name) => name.startsWith("Train ") || name.startsWith("Test ");

// Train before Test; the platform's "Train X"/"Test X" before Keras' own "X"/"val_X".
function seriesOrder(a, b) {
  const rank = (n) => (isPlatformSeries(n) ? 0 : 2) + (isTestSeries(n) ? 1 : 0);
  return rank(a) - rank(b) || a.localeCompare(b);
}

function seriesOptions(name) {
  return {
    label: name,
    stroke: isTestSeries(name) ? TEST_COLOR : TRAIN_COLOR,
    width: 2,
    dash: isPlatformSeries(name) ? undefined : [6, 4],
    spanGaps: true,
    points: { show: true, size: 5 },
    value: (u, v) => (v === null || v === undefined ? "–" : Number(v).toPrecision(4)),
  };
}

// A dashed vertical line at x (data units) over the plot area, labelled; for draw hooks (the kept
// epoch here; thresholds and guides in the model report). Nothing when x is zoomed out of view.
export function drawVerticalLine(plot, x, color, label) {
  if (x === null || x === undefined) return;
  const { left, top, width, height } = plot.bbox;
  const px = Math.round(plot.valToPos(x, "x", true));
  if (!Number.isFinite(px) || px < left - 1 || px > left + width + 1) return;
  const ratio = uPlot.pxRatio || 1;
  const ctx = plot.ctx;
  ctx.save();
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.5 * ratio;
  ctx.setLineDash([5 * ratio, 4 * ratio]);
  ctx.beginPath();
  ctx.moveTo(px, top);
  ctx.lineTo(px, top + height);
  ctx.stroke();
  ctx.setLineDash([]);
  if (label) {
    ctx.fillStyle = color;
    ctx.font = `600 ${11 * ratio}px system-ui, sans-serif`;
    // The label goes left of the line where it would not fit right of it.
    const nearRight = px + ctx.measureText(label).width + 8 * ratio > left + width;
    ctx.textAlign = nearRight ? "right" : "left";
    ctx.fillText(label, px + (nearRight ? -4 : 4) * ratio, top + 12 * ratio);
  }
  ctx.restore();
}

function chartOptions(base, names, width, keptEpoch = () => null) {
  return {
    title: base,
    width,
    height: HEIGHT,
    scales: { x: { time: false } },
    axes: [
      { label: "epoch", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] },
      { size: 60 },
    ],
    series: [{ label: "epoch", value: (u, v) => (v === null || v === undefined ? "–" : String(v)) }, ...names.map(seriesOptions)],
    cursor: { drag: { x: true, y: false } },
    legend: { live: true },
    hooks: { draw: [(plot) => drawVerticalLine(plot, keptEpoch(), KEPT_COLOR, "★ kept")] },
  };
}

// The user zoomed when the x window no longer covers the data drawn so far.
function isZoomed(plot) {
  const xs = plot.data[0];
  if (!xs || xs.length < 2) return false;
  const { min, max } = plot.scales.x;
  return min > xs[0] || max < xs[xs.length - 1];
}

// Chart order: the ML task's optimization metric, then the platform's metrics (which have Train
// and Test series), then Keras' own logs.
function chartRank(base, names, preferred) {
  if (base === preferred) return 0;
  return names.some(isPlatformSeries) ? 1 : 2;
}

export class LearningCurves {
  constructor(container, select, emptyNote, preferred = "") {
    this.container = container;
    this.select = select;
    this.emptyNote = emptyNote;
    this.preferred = preferred;
    this.charts = new Map(); // base -> {plot, names, wrapper}
    this.keptEpoch = null; // the epoch whose weights the model kept, once known
    this.select.addEventListener("change", () => this.applyFilter());
    // Each chart follows its own grid cell, which changes with the window and the metric filter.
    this.resizer = new ResizeObserver(() => this.resize());
  }

  // Marks `epoch` (or nothing, for null) on every chart; charts drawn later get it too.
  setKeptEpoch(epoch) {
    const value = Number.isInteger(epoch) ? epoch : null;
    if (value === this.keptEpoch) return;
    this.keptEpoch = value;
    for (const chart of this.charts.values()) this.showKept(chart);
  }

  showKept(chart) {
    if (this.keptEpoch === null) delete chart.wrapper.dataset.keptEpoch;
    else chart.wrapper.dataset.keptEpoch = String(this.keptEpoch);
    chart.plot.redraw(false);
  }

  // Charts sit in a CSS grid; each takes its cell's width.
  width(wrapper) {
    return Math.max(280, Math.floor(wrapper.clientWidth || this.container.clientWidth));
  }

  // rows: epoch rows in epoch order, as SessionStream.epochRows() returns them.
  update(rows) {
    const groups = new Map();
    for (const row of rows) {
      for (const name of Object.keys(row.values || {})) {
        const base = metricBase(name);
        if (!groups.has(base)) groups.set(base, new Set());
        groups.get(base).add(name);
      }
    }
    if (this.emptyNote) this.emptyNote.hidden = groups.size > 0;
    const xs = rows.map((row) => row.epoch);
    for (const [base, nameSet] of groups) {
      const names = [...nameSet].sort(seriesOrder);
      const data = [xs, ...names.map((name) => rows.map((row) => row.values?.[name] ?? null))];
      const chart = this.charts.get(base);
      if (chart && chart.names.join("\n") === names.join("\n")) {
        this.setData(chart.plot, data);
      } else {
        this.replaceChart(base, names, data);
      }
    }
    this.arrange();
  }

  // Keeps charts and selector options in chartRank order (stable within a rank).
  arrange() {
    const bases = [...this.charts.keys()];
    const order = bases
      .map((base, index) => ({ base, index, rank: chartRank(base, this.charts.get(base).names, this.preferred) }))
      .sort((a, b) => a.rank - b.rank || a.index - b.index)
      .map((entry) => entry.base);
    const shown = [...this.container.querySelectorAll(":scope > .chart")].map((node) => node.dataset.metric);
    if (shown.join("\n") !== order.join("\n")) {
      for (const base of order) this.container.append(this.charts.get(base).wrapper);
    }
    const options = [...this.select.options].slice(1).map((option) => option.value);
    if (options.join("\n") !== order.join("\n")) {
      const chosen = this.select.value;
      this.select.replaceChildren(this.select.options[0], ...order.map((base) => el("option", { value: base }, base)));
      this.select.value = order.includes(chosen) ? chosen : "";
    }
  }

  setData(plot, data) {
    if (isZoomed(plot)) {
      const { min, max } = plot.scales.x;
      plot.setData(data, false);
      plot.setScale("x", { min, max }); // redraws inside the user's window (y follows the data)
    } else {
      plot.setData(data);
    }
  }

  replaceChart(base, names, data) {
    const old = this.charts.get(base);
    const wrapper = old ? old.wrapper : el("div", { className: "chart", dataset: { metric: base } });
    if (old) old.plot.destroy();
    else {
      this.container.append(wrapper);
      this.resizer.observe(wrapper);
    }
    const plot = new uPlot(chartOptions(base, names, this.width(wrapper), () => this.keptEpoch), data, wrapper);
    const chart = { plot, names, wrapper };
    this.charts.set(base, chart);
    if (this.keptEpoch !== null) this.showKept(chart);
    this.applyFilter();
  }

  applyFilter() {
    const chosen = this.select.value;
    for (const [base, chart] of this.charts) {
      const visible = !chosen || chosen === base;
      if (chart.wrapper.hidden === visible) {
        chart.wrapper.hidden = !visible;
        if (visible) chart.plot.setSize({ width: this.width(chart.wrapper), height: HEIGHT });
      }
    }
  }

  resize() {
    for (const chart of this.charts.values()) {
      const width = this.width(chart.wrapper);
      if (!chart.wrapper.hidden && chart.plot.width !== width) chart.plot.setSize({ width, height: HEIGHT });
    }
  }
}
