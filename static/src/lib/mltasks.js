// ML task helpers: creating one (dataset and analysis pages) and editing its targets (ML task page).
import { postJSON } from "./api.js";
import { el } from "./dom.js";

// `alsoPredict`: more target columns for a multi-output model (their types are guessed).
export function createMLTask(analysisId, target, predictionType, alsoPredict = []) {
  const first = { name: target };
  if (predictionType) first.prediction_type = predictionType; // empty: the server guesses
  const body = alsoPredict.length
    ? { targets: [first, ...alsoPredict.map((name) => ({ name }))] }
    : { target, ...(predictionType ? { prediction_type: predictionType } : {}) };
  return postJSON(`/api/analyses/${analysisId}/mltasks/`, body);
}

export function mltaskPageUrl(projectId, mltaskId) {
  return `/projects/${projectId}/mltasks/${mltaskId}/`;
}

const PREDICTION_TYPES = ["regression", "binary", "multiclass"];

// Payload form of a target: a target added on the page has no type until the server guesses it.
function spec({ name, prediction_type: type }) {
  return type ? { name, prediction_type: type } : { name };
}

// The targets table of the ML task page: one row per target with its prediction type and classes;
// editors change a type, remove a target (never the last one) and add one. `onChange(kind, name)`
// says what happened: "type", "added" or "removed".
export function createTargetsEditor(tbody, { targets, readOnly, onChange }) {
  let rows = [];
  let savedTypes = new Map(); // what the server holds, to say when classes are out of date

  function classesText(row) {
    if (savedTypes.get(row.name) !== row.prediction_type) return "computed when saved";
    return row.classes ? row.classes.join(", ") : "–";
  }

  function typeSelect(row) {
    const node = el("select", { disabled: readOnly, "aria-label": `${row.name} prediction type` });
    const choices = row.prediction_type ? PREDICTION_TYPES : ["", ...PREDICTION_TYPES];
    for (const type of choices) {
      node.append(el("option", { value: type, selected: type === row.prediction_type }, type || "guess from its values"));
    }
    node.addEventListener("change", () => {
      row.prediction_type = node.value;
      draw();
      onChange("type", row.name);
    });
    return node;
  }

  function removeButton(row) {
    const last = rows.length === 1;
    const button = el(
      "button",
      {
        type: "button",
        className: "button-secondary",
        disabled: last,
        title: last ? "An ML task needs at least one target; add another before removing this one." : "",
        "aria-label": `Remove target ${row.name}`,
      },
      "Remove",
    );
    button.addEventListener("click", () => remove(row.name));
    return button;
  }

  function draw() {
    // The first target is the one a classification split is stratified on.
    const first = el("span", { className: "muted small", title: "A stratified split keeps this target's classes." }, " (first)");
    tbody.replaceChildren(
      ...rows.map((row, index) =>
        el(
          "tr",
          { dataset: { target: row.name } },
          el("td", { className: "mono" }, row.name, index === 0 && rows.length > 1 ? first : null),
          el("td", {}, typeSelect(row)),
          el("td", { className: "small" }, classesText(row)),
          readOnly ? null : el("td", {}, removeButton(row)),
        ),
      ),
    );
  }

  function set(list) {
    rows = list.map((target) => ({ ...target }));
    savedTypes = new Map(list.map((target) => [target.name, target.prediction_type]));
    draw();
  }

  function add(name) {
    if (!name || rows.some((row) => row.name === name)) return;
    rows.push({ name, prediction_type: "", classes: null });
    draw();
    onChange("added", name);
  }

  function remove(name) {
    if (rows.length === 1) return;
    rows = rows.filter((row) => row.name !== name);
    draw();
    onChange("removed", name);
  }

  set(targets);
  return { get: () => rows.map(spec), names: () => rows.map((row) => row.name), set, add };
}

// The feature a column becomes when it stops being a target, as the server's defaults make it
// (analyses/design.py default_features): its type's default handling, into "main", or into an
// input of its own for an image.
export function defaultFeature(name, columnType, schema) {
  const type = schema[columnType] ? columnType : "categorical";
  const input = type === "image" ? imageInputName(name) : "main";
  return { name, role: "input", type, handling: { ...schema[type].default }, input };
}

function imageInputName(feature) {
  const name = feature.replace(/\W+/g, "_").replace(/^_+|_+$/g, "") || "image";
  return /^[A-Za-z_]/.test(name) ? name : `image_${name}`;
}

// `features` with `feature` inserted before the first one that comes later in `columnOrder`.
export function insertInColumnOrder(features, feature, columnOrder) {
  const position = (name) => columnOrder.indexOf(name);
  const index = features.findIndex((other) => position(other.name) > position(feature.name));
  return index === -1 ? [...features, feature] : [...features.slice(0, index), feature, ...features.slice(index)];
}

// The Training tab's settings as the page compares and edits them (strings for number fields),
// from an ML task's `training`; settings it saved before they existed read as `defaults` (as the
// server merges them).
export function trainingSettings(training, defaults) {
  const merged = { ...defaults, ...(training || {}) };
  const stopping = { ...defaults.early_stopping, ...(merged.early_stopping || {}) };
  return {
    trainingMode: merged.mode === "advanced" ? "advanced" : "standard",
    trainingCode: merged.code ?? "",
    keep: merged.keep === "last" ? "last" : "best",
    esEnabled: Boolean(stopping.enabled),
    esPatience: String(stopping.patience ?? ""),
    esMinDelta: String(stopping.min_delta ?? ""),
    gpus: gpusText(merged.runtime?.gpus),
    memoryGrowth: merged.runtime?.memory_growth !== false,
  };
}

// The runtime's GPU request as typed: "auto", "0", "2", "0,1".
export function gpusText(gpus) {
  if (gpus === undefined || gpus === null) return "auto";
  return Array.isArray(gpus) ? gpus.join(",") : String(gpus);
}

// "auto" / "2" / "0,1" → what the API takes; anything else goes as typed, so the server's message names it.
export function gpusValue(text) {
  const typed = text.trim();
  if (typed === "" || typed === "auto") return "auto";
  if (/^\d+$/.test(typed)) return Number(typed);
  if (/^\d+(\s*,\s*\d+)+$/.test(typed)) return typed.split(",").map((part) => Number(part.trim()));
  return typed;
}

// One line per worker: "celery@gpu-1: 2 GPUs (NVIDIA H200), 1 of 2 slots busy"; offline ones say so.
export function describeWorkers(workers) {
  if (!workers.length) return "No training worker has been seen in the last hour.";
  return workers
    .map((worker) => {
      const kinds = [...new Set(worker.gpus.map((gpu) => gpu.name))].join(", ");
      const gpus = worker.gpus.length ? `${worker.gpus.length} GPU${worker.gpus.length > 1 ? "s" : ""} (${kinds})` : "CPU only";
      const state = worker.online ? `${worker.busy_slots} of ${worker.slots} slot${worker.slots > 1 ? "s" : ""} busy` : "offline";
      return `${worker.name}: ${gpus}, ${state}`;
    })
    .join(" · ");
}

// The optimization metric as the epoch logs name it: "Test ROC AUC", or "Test ROC AUC (churn)"
// on a multi-output model (measured on the first target's output).
export function metricLogName(metric, targetNames) {
  if (!metric) return "the optimization metric";
  return `Test ${metric}${targetNames.length > 1 ? ` (${targetNames[0]})` : ""}`;
}

// Fills the optimization-metric <select> with `choices` ([{name, greater_is_better}]) and selects
// `value`; a value the list lacks (saved before the type changed) stays shown, marked, so that
// opening the page never changes the design by itself.
export function fillMetricSelect(select, choices, value, fallback) {
  const names = choices.map((choice) => choice.name);
  const options = choices.map((choice) => el("option", { value: choice.name }, choice.name));
  if (value && !names.includes(value)) {
    options.push(el("option", { value }, `${value} (not measured for this type: ${fallback} is used)`));
  }
  select.replaceChildren(...options);
  select.value = value || fallback;
}

// ---------------------------------------------------------------- Validate (the design's dry run)

// A shape as Python prints a tuple: [30] → "(30,)", [28, 28, 1] → "(28, 28, 1)", null → "None".
export function shapeText(shape) {
  const dims = (shape || []).map((d) => (d === null || d === undefined ? "None" : String(d)));
  return dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(", ")})`;
}

// "✓ Valid — inputs main (30,), n_classes 2, 1,234 parameters" from a verdict (the endpoint's
// answer, or the ML task's stored `validation`, which has no n_classes).
export function validHeadline(verdict) {
  const inputs = Object.entries(verdict.input_shapes || {}).map(([name, shape]) => `${name} ${shapeText(shape)}`);
  const parts = [];
  if (inputs.length) parts.push(`input${inputs.length === 1 ? "" : "s"} ${inputs.join(", ")}`);
  if (typeof verdict.n_classes === "number") parts.push(`n_classes ${verdict.n_classes}`);
  if (typeof verdict.params === "number") parts.push(`${verdict.params.toLocaleString("en-US")} parameters`);
  return `✓ Valid${parts.length ? ` — ${parts.join(", ")}` : ""}`;
}

const TAB_NAMES = { architecture: "Architecture", training: "Training", preprocessing: "Preprocessing" };

// Where an error is: "Architecture code, line 7 (build_model)"; "" when the runner could not say.
export function errorWhere(error) {
  const tab = TAB_NAMES[error.tab];
  const place = tab ? `${tab} code${error.line ? `, line ${error.line}` : ""}` : "";
  if (place && error.phase) return `${place} (${error.phase})`;
  return place || (error.phase ? `in ${error.phase}` : "");
}

// The editor tab an error belongs to, when the page has that editor.
export function errorTab(error) {
  return TAB_NAMES[error.tab] ? error.tab : null;
}

// "just now", "3 min ago", "2 h ago", "4 days ago" for an ISO time (the stored verdict's `at`).
export function timeAgo(iso, now = Date.now()) {
  const then = Date.parse(iso || "");
  if (Number.isNaN(then)) return "";
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  const days = Math.floor(seconds / 86400);
  return `${days} day${days === 1 ? "" : "s"} ago`;
}
