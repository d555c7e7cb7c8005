// Overlaid learning curves: one uPlot chart, one series per compared session (its own colour),
// for one metric at a time; Train dashed and Test solid when both are shown. Each session's kept
// epoch gets a ★ on its Test curve (its Train curve when only Train is shown).
import uPlot from "uplot";

import { metricBase } from "./charts.js";

// Distinct on white and for the common colour-vision deficiencies (Okabe–Ito, then two more).
export const SESSION_COLORS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#6B7280", "#111827"];
const HEIGHT = 320;

// The metric bases the sessions' epochs hold: the platform's "Train X"/"Test X" give "X", Keras'
// own "loss"/"val_loss" give "loss"; `preferred` (the optimization metric) first.
export function metricChoices(sessions, preferred) {
  const platform = new Set();
  const keras = new Set();
  for (const session of sessions) {
    for (const row of session.epochs) {
      for (const name of Object.keys(row.values || {})) {
        (name.startsWith("Train ") || name.startsWith("Test ") ? platform : keras).add(metricBase(name));
      }
    }
  }
  for (const base of platform) keras.delete(base);
  const ordered = [...platform].sort((a, b) => (b === preferred) - (a === preferred));
  return [...ordered, ...[...keras].sort()];
}

// The log name of `base` on `split` ("Train" | "Test") in these rows: "Test ROC AUC", or Keras'
// "loss" / "val_loss".
function seriesName(base, split, platform) {
  if (platform) return `${split} ${base}`;
  return split === "Test" ? `val_${base}` : base;
}

function drawKeptStars(plot, marks) {
  const ratio = uPlot.pxRatio || 1;
  const ctx = plot.ctx;
  ctx.save();
  ctx.font = `${16 * ratio}px system-ui, sans-serif`;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  for (const { epoch, value, color } of marks) {
    if (value === null || value === undefined) continue;
    const x = plot.valToPos(epoch, "x", true);
    const y = plot.valToPos(value, "y", true);
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    ctx.fillStyle = color;
    ctx.fillText("★", x, y);
  }
  ctx.restore();
}

export class OverlaidCurves {
  constructor(container, emptyNote) {
    this.container = container;
    this.emptyNote = emptyNote;
    this.plot = null;
    this.marks = [];
    new ResizeObserver(() => this.resize()).observe(container);
  }

  width() {
    return Math.max(320, Math.floor(this.container.clientWidth));
  }

  // sessions: [{id, color, kept_epoch, epochs: [{epoch, values, partial}]}]; split "Test" | "Train" | "both".
  show(sessions, base, split) {
    const complete = sessions.map((s) => ({ ...s, rows: s.epochs.filter((row) => !row.partial) }));
    const platform = complete.some((s) => s.rows.some((row) => `Test ${base}` in row.values || `Train ${base}` in row.values));
    const splits = split === "both" ? ["Train", "Test"] : [split];
    const xs = [...new Set(complete.flatMap((s) => s.rows.map((row) => row.epoch)))].sort((a, b) => a - b);
    const series = [{ label: "epoch" }];
    const data = [xs];
    this.marks = [];
    for (const session of complete) {
      const byEpoch = new Map(session.rows.map((row) => [row.epoch, row.values || {}]));
      for (const part of splits) {
        const name = seriesName(base, part, platform);
        series.push({
          label: `${session.id} · ${name}`,
          stroke: session.color,
          width: 2,
          dash: part === "Train" && split === "both" ? [6, 4] : undefined,
          spanGaps: true,
          points: { show: true, size: 5 },
          value: (u, v) => (v === null || v === undefined ? "–" : Number(v).toPrecision(4)),
        });
        data.push(xs.map((epoch) => byEpoch.get(epoch)?.[name] ?? null));
        const starred = part === "Test" || split === "Train";
        if (starred && Number.isInteger(session.kept_epoch)) {
          this.marks.push({ epoch: session.kept_epoch, value: byEpoch.get(session.kept_epoch)?.[name], color: session.color });
        }
      }
    }
    const drawn = data.slice(1).some((column) => column.some((v) => v !== null));
    if (this.emptyNote) this.emptyNote.hidden = drawn;
    this.container.hidden = !drawn;
    if (this.plot) this.plot.destroy();
    this.plot = null;
    this.container.replaceChildren();
    this.container.dataset.metric = base;
    this.container.dataset.series = String(series.length - 1);
    if (!drawn) return;
    const options = {
      title: `${base}${split === "both" ? "" : ` (${split})`}`,
      width: this.width(),
      height: HEIGHT,
      scales: { x: { time: false } },
      axes: [{ label: "epoch", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] }, { size: 60 }],
      series,
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      hooks: { draw: [(plot) => drawKeptStars(plot, this.marks)] },
    };
    this.plot = new uPlot(options, data, this.container);
  }

  resize() {
    if (this.plot && !this.container.hidden && this.plot.width !== this.width()) {
      this.plot.setSize({ width: this.width(), height: HEIGHT });
    }
  }
}
