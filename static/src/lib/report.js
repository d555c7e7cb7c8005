// The model report on the session page (templates/analyses/_report.html), shown once the session
// succeeded or was interrupted: GET /api/sessions/{id}/report/ once, then everything is drawn here.
// The binary threshold slider needs no round trip: the report holds the confusion counts at every
// threshold from 0.00 to 1.00. Tabs draw on first view (charts need a visible, sized container).
import { getJSON } from "./api.js";
import { LearningCurves, metricBase } from "./charts.js";
import { el, formatNumber } from "./dom.js";
import { drawLayerGraph } from "./layer_graph.js";
import {
  COLORS,
  GUIDE_COLOR,
  barPaths,
  drawChart,
  drawMarker,
  drawVerticalLine,
  mergeCurves,
  scatterSeries,
} from "./report_charts.js";

const REPORTABLE = new Set(["succeeded", "interrupted"]);
const THRESHOLD_COLOR = "#b42318";
const TARGET_TABS = {
  binary: [["confusion", "Confusion matrix"], ["roc", "ROC"], ["pr", "Precision–recall"], ["lift", "Lift"], ["density", "Densities"]],
  multiclass: [["confusion", "Confusion matrix"], ["roc", "ROC per class"]],
  regression: [["scatter", "Predicted vs actual"], ["residuals", "Errors"], ["deciles", "Error by decile"]],
};
const COMMON_TABS = { first: [["metrics", "Metrics"]], last: [["model", "Model"], ["code", "Code & settings"], ["environment", "Environment"]] };

// Mounts the report: loads it as soon as the status chip says the session is trained or
// interrupted (at once for a finished session, or when the live page sees it end).
export function mountReport(data) {
  const root = document.getElementById("report");
  if (!root || !data.session) return;
  const chip = document.getElementById("status");
  let requested = false;
  const check = () => {
    const status = chip ? chip.textContent.trim() : data.session.status;
    if (requested || !REPORTABLE.has(status)) return;
    requested = true;
    new Report(root, data).load();
  };
  if (chip) new MutationObserver(check).observe(chip, { childList: true, characterData: true, subtree: true });
  check();
}

class Report {
  constructor(root, data) {
    this.root = root;
    this.data = data;
    this.status = root.querySelector("#report-status");
    this.tabList = root.querySelector("#report-tabs");
    this.panels = root.querySelector("#report-panels");
    this.targetSelect = root.querySelector("#report-target");
    this.tabList.addEventListener("keydown", (event) => this.onTabKey(event));
    this.rendered = new Map(); // tab key -> panel
    this.current = "metrics";
    this.thresholds = new Map(); // target -> {index, listeners}
  }

  async load() {
    this.root.hidden = false;
    this.status.hidden = false;
    this.status.textContent = "Loading the report…";
    try {
      this.report = await getJSON(`/api/sessions/${this.data.session.id}/report/`);
    } catch (error) {
      this.status.textContent = error.message;
      return;
    }
    this.status.hidden = true;
    this.root.dataset.loaded = "true";
    this.setupTargets();
    this.showTabs();
  }

  get section() {
    const name = this.targetSelect.value;
    return this.report.targets.find((t) => t.target === name) || this.report.targets[0];
  }

  setupTargets() {
    const targets = this.report.targets;
    this.targetSelect.replaceChildren(...targets.map((t) => el("option", { value: t.target }, `${t.target} (${t.prediction_type})`)));
    this.targetSelect.closest("label").hidden = targets.length < 2;
    this.targetSelect.addEventListener("change", () => {
      // Per-target tabs are drawn again for the chosen target; the others stay.
      for (const [key, panel] of this.rendered) {
        if (!COMMON_KEYS.has(key)) {
          panel.remove();
          this.rendered.delete(key);
        }
      }
      this.showTabs();
    });
  }

  tabs() {
    const section = this.section;
    const kind = section.error ? null : section.prediction_type;
    const middle = kind ? TARGET_TABS[kind] : [["target-error", "Target"]];
    return [...COMMON_TABS.first, ...middle, ...COMMON_TABS.last];
  }

  showTabs() {
    const tabs = this.tabs();
    if (!tabs.some(([key]) => key === this.current)) this.current = "metrics";
    this.tabList.replaceChildren(
      ...tabs.map(([key, label]) =>
        el("button", {
          type: "button",
          className: "report-tab",
          id: `report-tab-${key}`,
          role: "tab",
          "aria-controls": `report-panel-${key}`,
          dataset: { tab: key },
          onclick: () => this.select(key),
        }, label)),
    );
    this.select(this.current);
  }

  select(key) {
    this.current = key;
    for (const button of this.tabList.querySelectorAll("[role=tab]")) {
      const chosen = button.dataset.tab === key;
      button.setAttribute("aria-selected", String(chosen));
      button.tabIndex = chosen ? 0 : -1;
    }
    for (const panel of this.rendered.values()) panel.hidden = true;
    let panel = this.rendered.get(key);
    if (!panel) {
      panel = el("div", { className: "report-panel", id: `report-panel-${key}`, role: "tabpanel", "aria-labelledby": `report-tab-${key}` });
      this.panels.append(panel);
      this.rendered.set(key, panel);
      panel.hidden = false;
      this.draw(key, panel);
    }
    panel.hidden = false;
  }

  // Arrow keys, Home and End move between tabs (WAI-ARIA tabs); Tab goes on to the panel.
  onTabKey(event) {
    const keys = [...this.tabList.querySelectorAll("[role=tab]")].map((button) => button.dataset.tab);
    const at = keys.indexOf(this.current);
    const next = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: keys.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    const key = keys[(next + keys.length) % keys.length];
    this.select(key);
    this.tabList.querySelector(`[data-tab="${key}"]`).focus();
  }

  draw(key, panel) {
    const section = this.section;
    const kind = section.prediction_type;
    const drawers = {
      metrics: () => drawMetrics(panel, this.report),
      model: () => drawModel(panel, this.report.model),
      code: () => drawCode(panel, this.report.provenance),
      environment: () => drawEnvironment(panel, this.report.provenance),
      "target-error": () => panel.append(el("p", { className: "message message-error" }, `No report for ${section.target}: ${section.error}.`)),
      confusion: () => (kind === "binary" ? drawBinaryConfusion(panel, section, this.threshold(section)) : drawMulticlassConfusion(panel, section.multiclass)),
      roc: () => (kind === "binary" ? drawBinaryRoc(panel, section, this.threshold(section)) : drawMulticlassRoc(panel, section.multiclass)),
      pr: () => drawPrecisionRecall(panel, section, this.threshold(section)),
      lift: () => drawLift(panel, section.binary),
      density: () => drawDensity(panel, section.binary, this.threshold(section)),
      scatter: () => drawScatter(panel, section.regression),
      residuals: () => drawResiduals(panel, section.regression),
      deciles: () => drawDeciles(panel, section.regression),
    };
    if (section.dropped_rows && !COMMON_KEYS.has(key)) {
      panel.append(el("p", { className: "muted small" }, `${section.dropped_rows} test row(s) left out: no usable actual value or prediction.`));
    }
    drawers[key]();
  }

  // The threshold state of a binary target, shared by its confusion matrix, ROC, PR and densities.
  threshold(section) {
    if (!this.thresholds.has(section.target)) {
      const binary = section.binary;
      const index = binary.thresholds.indexOf(binary.default_threshold);
      this.thresholds.set(section.target, new Threshold(binary, index < 0 ? 50 : index));
    }
    return this.thresholds.get(section.target);
  }
}

const COMMON_KEYS = new Set([...COMMON_TABS.first, ...COMMON_TABS.last].map(([key]) => key));

class Threshold {
  constructor(binary, index) {
    this.binary = binary;
    this.index = index;
    this.listeners = [];
  }

  get value() {
    return this.binary.thresholds[this.index];
  }

  counts(index = this.index) {
    const c = this.binary.counts;
    return { tp: c.tp[index], fp: c.fp[index], tn: c.tn[index], fn: c.fn[index] };
  }

  set(index) {
    this.index = Math.max(0, Math.min(this.binary.thresholds.length - 1, index));
    for (const listener of this.listeners) listener();
  }

  listen(listener) {
    this.listeners.push(listener);
  }
}

// ------------------------------------------------------------------ binary

function rates({ tp, fp, tn, fn }, gains) {
  const rows = tp + fp + tn + fn;
  const ratio = (a, b) => (b ? a / b : 0);
  return {
    Accuracy: ratio(tp + tn, rows),
    Precision: ratio(tp, tp + fp),
    Recall: ratio(tp, tp + fn),
    "F1 Score": ratio(2 * tp, 2 * tp + fp + fn),
    "Cost Matrix Gain": ratio(tp * gains.tp + tn * gains.tn + fp * gains.fp + fn * gains.fn, rows),
  };
}

function drawBinaryConfusion(panel, section, threshold) {
  const binary = section.binary;
  const best = binary.best_threshold;
  const [negative, positive] = binary.classes;
  const slider = el("input", {
    type: "range", id: "report-threshold", min: "0", max: String(binary.thresholds.length - 1), step: "1",
    value: String(threshold.index), "aria-label": `Threshold: predict ${positive} at or above it`,
  });
  const shown = el("output", { id: "report-threshold-value", htmlFor: "report-threshold" });
  const bestButton = el("button", { type: "button", className: "button-secondary", id: "report-best-threshold" },
    best.threshold === null ? "No best threshold" : `Best for ${best.metric}: ${best.threshold.toFixed(2)}`);
  bestButton.disabled = best.index === null;
  bestButton.addEventListener("click", () => threshold.set(best.index));
  const defaultIndex = binary.thresholds.indexOf(binary.default_threshold);
  const defaultButton = el("button", { type: "button", className: "button-secondary", id: "report-default-threshold" },
    `${binary.default_threshold.toFixed(2)} (as trained)`);
  defaultButton.addEventListener("click", () => threshold.set(defaultIndex));
  slider.addEventListener("input", () => threshold.set(Number(slider.value)));

  const cell = (name, title) => el("td", { className: "num confusion-cell", dataset: { cell: name }, id: `report-cm-${name}`, title });
  const cells = {
    tn: cell("tn", "true negatives"), fp: cell("fp", "false positives"),
    fn: cell("fn", "false negatives"), tp: cell("tp", "true positives"),
  };
  const table = el("table", { className: "table confusion", id: "report-confusion" },
    el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", { scope: "col" }, `Predicted ${negative}`), el("th", { scope: "col" }, `Predicted ${positive}`), el("th", { scope: "col", className: "num" }, "Rows"))),
    el("tbody", {},
      el("tr", {}, el("th", { scope: "row" }, `Actual ${negative}`), cells.tn, cells.fp, el("td", { className: "num" }, String(binary.rows - binary.positives))),
      el("tr", {}, el("th", { scope: "row" }, `Actual ${positive}`), cells.fn, cells.tp, el("td", { className: "num" }, String(binary.positives)))),
  );
  const metricRows = el("tbody");
  const metrics = el("table", { className: "table table-compact report-threshold-metrics", id: "report-threshold-metrics" },
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "At this threshold"), el("th", { scope: "col", className: "num" }, "Value"))), metricRows);

  const update = () => {
    slider.value = String(threshold.index);
    shown.textContent = threshold.value.toFixed(2);
    const counts = threshold.counts();
    for (const [name, node] of Object.entries(cells)) {
      node.textContent = String(counts[name]);
      node.style.setProperty("--share", String(binary.rows ? counts[name] / binary.rows : 0));
    }
    const values = rates(counts, binary.cost_matrix);
    metricRows.replaceChildren(...Object.entries(values).map(([name, value]) =>
      el("tr", { className: name === best.metric ? "row-kept" : "" }, el("th", { scope: "row" }, name), el("td", { className: "num" }, formatNumber(value)))));
  };
  threshold.listen(update);
  update();
  panel.append(
    el("div", { className: "threshold-row" }, el("label", { htmlFor: "report-threshold" }, "Threshold"), slider, shown, bestButton, defaultButton),
    el("p", { className: "muted small" },
      `A row is predicted ${positive} when its probability is at or above the threshold. `,
      best.threshold === null ? "" : `The best threshold maximises ${best.metric} (${formatNumber(best.value)}): ${best.reason}.`),
    el("div", { className: "report-columns" }, table, metrics),
  );
}

function drawBinaryRoc(panel, section, threshold) {
  const binary = section.binary;
  if (!binary.roc) return panel.append(el("p", { className: "empty" }, binary.note || "No ROC curve."));
  const data = mergeCurves([{ x: binary.roc.fpr, y: binary.roc.tpr }, { x: [0, 1], y: [0, 1] }]);
  const rate = () => {
    const c = threshold.counts();
    return [c.fp + c.tn ? c.fp / (c.fp + c.tn) : 0, c.tp + c.fn ? c.tp / (c.tp + c.fn) : 0];
  };
  const plot = drawChart(panel, {
    title: `ROC curve · AUC ${formatNumber(binary.roc.auc)}`,
    xLabel: "false positive rate", yLabel: "true positive rate", data,
    series: [{ label: binary.positive_class, color: COLORS[0] }, { label: "chance", color: GUIDE_COLOR, dash: [5, 5], width: 1 }],
    x: { range: [0, 1] }, y: { range: [0, 1] },
    hooks: { draw: [(u) => drawMarker(u, ...rate(), THRESHOLD_COLOR, `threshold ${threshold.value.toFixed(2)}`)] },
  });
  threshold.listen(() => plot.redraw(false));
}

function drawPrecisionRecall(panel, section, threshold) {
  const binary = section.binary;
  if (!binary.pr) return panel.append(el("p", { className: "empty" }, binary.note || "No precision-recall curve."));
  const pr = binary.pr;
  const data = mergeCurves([{ x: pr.recall, y: pr.precision }, { x: [0, 1], y: [pr.baseline, pr.baseline] }]);
  const point = () => {
    const c = threshold.counts();
    return [c.tp + c.fn ? c.tp / (c.tp + c.fn) : 0, c.tp + c.fp ? c.tp / (c.tp + c.fp) : null];
  };
  const plot = drawChart(panel, {
    title: `Precision–recall · average precision ${formatNumber(pr.average_precision)}`,
    xLabel: "recall", yLabel: "precision", data,
    series: [{ label: binary.positive_class, color: COLORS[0] }, { label: "positive rate", color: GUIDE_COLOR, dash: [5, 5], width: 1 }],
    x: { range: [0, 1] }, y: { range: [0, 1] },
    hooks: { draw: [(u) => drawMarker(u, ...point(), THRESHOLD_COLOR, `threshold ${threshold.value.toFixed(2)}`)] },
  });
  threshold.listen(() => plot.redraw(false));
}

function drawLift(panel, binary) {
  const lift = binary.lift;
  if (!lift.fractions.length) return panel.append(el("p", { className: "empty" }, "No positive row in the test set: no lift."));
  const fractions = lift.fractions;
  panel.append(el("p", { className: "muted small" },
    `Rows sorted by probability of ${binary.positive_class}, highest first. Cumulative Lift at ${Math.round(lift.fraction * 100)}% of rows: ${formatNumber(lift.at_fraction)}.`));
  const marker = { draw: [(u) => drawVerticalLine(u, lift.fraction, GUIDE_COLOR, `${Math.round(lift.fraction * 100)}%`)] };
  drawChart(panel, {
    title: "Cumulative lift", xLabel: "fraction of rows", yLabel: "lift", data: [fractions, lift.lift, fractions.map(() => 1)],
    series: [{ label: "lift", color: COLORS[0] }, { label: "chance", color: GUIDE_COLOR, dash: [5, 5], width: 1 }],
    x: { range: [0, 1] }, hooks: marker,
  });
  drawChart(panel, {
    title: "Cumulative gain", xLabel: "fraction of rows", yLabel: "share of positives", data: [fractions, lift.gain, fractions],
    series: [{ label: "gain", color: COLORS[1] }, { label: "chance", color: GUIDE_COLOR, dash: [5, 5], width: 1 }],
    x: { range: [0, 1] }, y: { range: [0, 1] }, hooks: marker,
  });
}

function drawDensity(panel, binary, threshold) {
  const density = binary.density;
  panel.append(el("p", { className: "muted small" },
    `Predicted probability of ${binary.positive_class}, per actual class (each class' area is 1).`));
  const plot = drawChart(panel, {
    title: "Predicted probability densities", xLabel: `P(${binary.positive_class})`, yLabel: "density",
    data: [density.centers, ...density.classes.map((c) => c.density)],
    series: density.classes.map((c, i) => ({ label: `actual ${c.class} (${c.rows})`, color: COLORS[i], fill: `${COLORS[i]}22`, points: { show: false } })),
    x: { range: [0, 1] },
    hooks: { draw: [(u) => drawVerticalLine(u, threshold.value, THRESHOLD_COLOR, `threshold ${threshold.value.toFixed(2)}`)] },
  });
  threshold.listen(() => plot.redraw(false));
}

// ------------------------------------------------------------------ multiclass

function drawMulticlassConfusion(panel, multiclass) {
  const classes = multiclass.classes;
  const rowTotals = multiclass.confusion.map((row) => row.reduce((a, b) => a + b, 0));
  const table = el("table", { className: "table confusion", id: "report-confusion" },
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Actual \\ predicted"), classes.map((c) => el("th", { scope: "col", className: "num" }, c)), el("th", { scope: "col", className: "num" }, "Rows"))),
    el("tbody", {}, multiclass.confusion.map((row, i) =>
      el("tr", {}, el("th", { scope: "row" }, classes[i]),
        row.map((count, j) => {
          const share = rowTotals[i] ? count / rowTotals[i] : 0;
          const node = el("td", { className: `num confusion-cell${i === j ? " confusion-diagonal" : ""}`, title: `${(share * 100).toFixed(1)}% of actual ${classes[i]}` }, String(count));
          node.style.setProperty("--share", String(share));
          return node;
        }),
        el("td", { className: "num" }, String(rowTotals[i]))))),
  );
  panel.append(
    el("p", { className: "muted small" }, `Rows: actual class; columns: predicted class (the highest probability). Shading: share of the actual class. Accuracy ${formatNumber(multiclass.accuracy)}.`),
    el("div", { className: "table-scroll" }, table),
  );
}

function drawMulticlassRoc(panel, multiclass) {
  const curves = multiclass.per_class.filter((c) => c.roc);
  if (!curves.length) return panel.append(el("p", { className: "empty" }, "No class has both positive and negative rows: no ROC curve."));
  const data = mergeCurves([...curves.map((c) => ({ x: c.roc.fpr, y: c.roc.tpr })), { x: [0, 1], y: [0, 1] }]);
  drawChart(panel, {
    title: `One-vs-rest ROC curves · macro AUC ${formatNumber(multiclass.macro_auc)}`,
    xLabel: "false positive rate", yLabel: "true positive rate", data,
    series: [...curves.map((c, i) => ({ label: `${c.class} (AUC ${formatNumber(c.roc.auc)})`, color: COLORS[i % COLORS.length] })),
      { label: "chance", color: GUIDE_COLOR, dash: [5, 5], width: 1 }],
    x: { range: [0, 1] }, y: { range: [0, 1] },
  });
}

// ------------------------------------------------------------------ regression

function drawScatter(panel, regression) {
  const scatter = regression.scatter;
  const values = [...scatter.actual, ...scatter.predicted].filter((v) => v !== null);
  const low = Math.min(...values);
  const high = Math.max(...values);
  panel.append(el("p", { className: "muted small" }, scatter.sampled
    ? `${scatter.actual.length.toLocaleString()} of ${regression.rows.toLocaleString()} test rows (a sample drawn with seed ${scatter.seed}); the line is prediction = actual.`
    : `All ${regression.rows.toLocaleString()} test rows; the line is prediction = actual.`));
  drawChart(panel, {
    title: "Predicted vs actual", xLabel: "actual", yLabel: "predicted",
    data: mergeCurves([{ x: scatter.actual, y: scatter.predicted }, { x: [low, high], y: [low, high] }]),
    series: [scatterSeries("rows", COLORS[0]), { label: "prediction = actual", color: GUIDE_COLOR, dash: [5, 5], width: 1 }],
    x: { range: [low, high] }, y: { range: [low, high] },
  });
}

function drawResiduals(panel, regression) {
  const { edges, counts } = regression.residuals;
  const centers = counts.map((_, i) => (edges[i] + edges[i + 1]) / 2);
  panel.append(el("p", { className: "muted small" },
    `Error = prediction − actual (positive: over-predicted). Mean error ${formatNumber(regression.mean_error)}, mean absolute error ${formatNumber(regression.mae)}.`));
  drawChart(panel, {
    title: "Errors", xLabel: "prediction − actual", yLabel: "rows", data: [centers, counts],
    series: [{ label: "rows", color: COLORS[0], fill: `${COLORS[0]}55`, paths: barPaths(), digits: 0 }],
    x: { range: [edges[0], edges[edges.length - 1]] },
    hooks: { draw: [(u) => drawVerticalLine(u, 0, GUIDE_COLOR, "0")] },
  });
}

function drawDeciles(panel, regression) {
  const deciles = regression.deciles;
  drawChart(panel, {
    title: "Error by decile of the actual value", xLabel: "decile", yLabel: "error",
    data: [deciles.map((d) => d.decile), deciles.map((d) => d.mae), deciles.map((d) => d.mean_error)],
    series: [
      { label: "mean absolute error", color: COLORS[0], fill: `${COLORS[0]}44`, paths: barPaths() },
      { label: "mean error", color: COLORS[1], points: { show: true, size: 6 } },
    ],
    x: { range: [0.5, deciles.length + 0.5] },
  });
  panel.append(el("div", { className: "table-scroll" }, el("table", { className: "table table-compact", id: "report-deciles" },
    el("thead", {}, el("tr", {}, ["Decile", "Actual from", "to", "Rows", "Mean absolute error", "Mean error"].map((h) => el("th", { scope: "col", className: "num" }, h)))),
    el("tbody", {}, deciles.map((d) => el("tr", {}, [d.decile, d.actual_min, d.actual_max, d.rows, d.mae, d.mean_error].map((v) => el("td", { className: "num" }, formatNumber(v)))))))));
}

// ------------------------------------------------------------------ metrics, model, provenance

function drawMetrics(panel, report) {
  const metric = report.optimization_metric;
  const rows = report.metrics.rows;
  const multi = report.multi_output;
  const kept = report.metrics.kept;
  if (kept && Number.isInteger(kept.epoch)) {
    const why = kept.keep === "last" ? "the last epoch" : `best ${kept.metric} ${formatNumber(kept.value)}`;
    panel.append(el("p", { className: "kept-note" }, el("span", { className: "kept-star", "aria-hidden": "true" }, "★"), ` Model kept: epoch ${kept.epoch} (${why})`));
  }
  const isOptimized = (row) => row.metric === metric.name && (!multi || row.target === report.targets[0].target);
  panel.append(el("div", { className: "table-scroll" }, el("table", { className: "table table-compact final-table", id: "report-metrics" },
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Metric"), multi ? el("th", { scope: "col" }, "Target") : null,
      el("th", { scope: "col", className: "num" }, "Train"), el("th", { scope: "col", className: "num" }, "Test"))),
    el("tbody", {}, rows.map((row) => el("tr", { className: isOptimized(row) ? "row-kept" : "", title: isOptimized(row) ? "the optimization metric" : "" },
      el("th", { scope: "row" }, row.metric, isOptimized(row) ? " ★" : ""), multi ? el("td", {}, row.target || "") : null,
      el("td", { className: "num" }, formatNumber(row.train)), el("td", { className: "num" }, formatNumber(row.test))))))));
  if (!rows.length) panel.append(el("p", { className: "empty" }, "No final metrics were stored."));

  const epochs = report.learning_curves.epochs;
  const select = el("select", { id: "report-curve-metric" }, el("option", { value: "" }, "All metrics"));
  const charts = el("div", { className: "charts" });
  const empty = el("p", { className: "empty" }, "No epoch finished.");
  panel.append(el("div", { className: "section-header" }, el("h3", {}, "Learning curves"),
    el("label", { className: "inline-label" }, "Metric ", select)), charts);
  charts.append(empty);
  const preferred = metricBase(metric.log_name);
  const curves = new LearningCurves(charts, select, empty, preferred);
  curves.update(epochs);
  if ([...select.options].some((option) => option.value === preferred)) {
    select.value = preferred; // the optimization metric first; the selector shows the others
    curves.applyFilter();
  }
  curves.setKeptEpoch(kept && Number.isInteger(kept.epoch) ? kept.epoch : null);
}

function drawModel(panel, model) {
  const graph = model.graph;
  const counts = graph && graph.params !== null
    ? `${graph.params.toLocaleString()} parameters (${(graph.trainable_params ?? 0).toLocaleString()} trainable, ${(graph.non_trainable_params ?? 0).toLocaleString()} not)`
    : model.params ? `${model.params.toLocaleString()} parameters` : "";
  const kinds = { functional: "functional model", sequential: "Sequential model", subclassed: "subclassed model" };
  const what = graph ? `${graph.model_class}${kinds[graph.kind] && graph.model_class.toLowerCase() !== graph.kind ? `, a ${kinds[graph.kind]}` : ""}` : "";
  panel.append(el("p", { className: "muted", id: "report-model-counts" }, [what, counts].filter(Boolean).join(" · ")));
  if (model.note) panel.append(el("p", { className: "message message-info", id: "report-graph-note" }, model.note));
  if (graph && graph.layers.length) {
    if (graph.graph && graph.edges.length) {
      panel.append(el("div", { className: "layer-graph-scroll", id: "report-layer-graph" }, drawLayerGraph(graph.layers, graph.edges, graph.inputs, graph.outputs)));
    }
    const inbound = new Map(graph.layers.map((layer) => [layer.name, []]));
    for (const [from, to] of graph.edges) inbound.get(to)?.push(from);
    panel.append(el("div", { className: "table-scroll" }, el("table", { className: "table table-compact", id: "report-layers" },
      el("thead", {}, el("tr", {}, ["Layer", "Class", "Output shape", "Parameters", "Inputs from"].map((h, i) => el("th", { scope: "col", className: i === 3 ? "num" : "" }, h)))),
      el("tbody", {}, graph.layers.map((layer) => el("tr", { dataset: { layer: layer.name } },
        el("td", { className: "mono" }, layer.name), el("td", {}, layer.class || ""), el("td", { className: "mono" }, layer.output_shape || "–"),
        el("td", { className: "num" }, layer.params === null ? "–" : layer.params.toLocaleString()),
        el("td", { className: "mono small" }, (inbound.get(layer.name) || []).join(", "))))))));
  }
  if (model.summary) {
    panel.append(el("details", { className: "report-details" }, el("summary", {}, "Keras summary"), el("pre", { className: "code-block" }, model.summary)));
  }
}

function codeBlock(title, code) {
  return [el("h3", {}, title), el("pre", { className: "code-block report-code" }, code)];
}

function drawCode(panel, provenance) {
  const code = provenance.code;
  panel.append(el("p", { className: "muted small" },
    `The design as this session froze it (version ${provenance.design_version ?? "?"}), ${provenance.training_mode} training mode.`));
  panel.append(...codeBlock("Architecture", code.architecture || "(empty)"));
  if (code.preprocessing) panel.append(...codeBlock("Preprocessing", code.preprocessing));
  if (code.training) panel.append(...codeBlock("Training", code.training));
  panel.append(...codeBlock("Settings", JSON.stringify(provenance.settings, null, 2)));
  if (Object.keys(provenance.project_variables || {}).length) {
    panel.append(...codeBlock("Project variables", JSON.stringify(provenance.project_variables, null, 2)));
  }
}

function drawEnvironment(panel, provenance) {
  const environment = provenance.environment || {};
  const dataset = provenance.dataset || {};
  const rows = [
    ["Dataset", `${dataset.name} (id ${dataset.id}) · ${dataset.filename || "?"} · ${formatNumber(dataset.rows)} rows · uploaded ${dataset.uploaded_at || "?"}`],
    dataset.source ? ["Read as", dataset.source] : null,
    dataset.sampling && dataset.sampling.method !== "all" ? ["Sampling", JSON.stringify(dataset.sampling)] : null,
    dataset.test_dataset ? ["Test dataset", dataset.test_dataset.deleted ? `id ${dataset.test_dataset.id} (deleted)` : `${dataset.test_dataset.name} (id ${dataset.test_dataset.id})`] : null,
    ["Seed", provenance.seed ?? "?"],
    ["Device", environment.device || "(not recorded)"],
    environment.accelerators?.length ? ["Accelerators", environment.accelerators.join(", ")] : null,
    ["Worker", provenance.worker || "?"],
    environment.platform ? ["Platform", `${environment.platform} (${environment.machine || "?"})`] : null,
    ...Object.entries(environment.versions || {}).map(([name, version]) => [name, version || "not installed"]),
    ["Sandboxed", provenance.isolation && "sandboxed" in provenance.isolation ? (provenance.isolation.sandboxed ? "yes" : `no (missing: ${(provenance.isolation.missing || []).join(", ")})`) : "?"],
    ["Started by", provenance.created_by || "?"],
    ["Trained", `${provenance.started_at || "?"} → ${provenance.ended_at || "?"}`],
  ].filter(Boolean);
  if (!provenance.environment) panel.append(el("p", { className: "muted small" }, "This session recorded no library versions (trained before the report existed)."));
  panel.append(el("table", { className: "table table-compact report-environment", id: "report-environment" },
    el("tbody", {}, rows.map(([name, value]) => el("tr", {}, el("th", { scope: "row" }, name), el("td", { className: "mono" }, String(value)))))));
}
