// ML task design page: edit the targets and their prediction types, features, split, Architecture
// code and Training settings; Save (compare-and-set on `version`) and Train. A refused save (409)
// never loses the user's edits. Validate saves first, then dry-runs the saved design and marks
// the lines its errors name.
import { ApiError, getJSON, patchJSON, postJSON } from "./lib/api.js";
import { $, busy, clearMessage, el, pageData, showMessage } from "./lib/dom.js";
import { clearMarks, createCodeEditor, getText, markLine, revealLine, setMarks, setText } from "./lib/editor.js";
import { createFeaturesEditor } from "./lib/features.js";
import { setupDuplicate } from "./lib/duplicate.js";
import { createHistory, showConflict, tracked, watchTeammates } from "./lib/history.js";
import { createSessionsTable } from "./lib/sessions_table.js";
import {
  createTargetsEditor,
  defaultFeature,
  errorTab,
  errorWhere,
  fillMetricSelect,
  insertInColumnOrder,
  metricLogName,
  timeAgo,
  trainingSettings,
  gpusValue,
  describeWorkers,
  validHeadline,
} from "./lib/mltasks.js";

const data = pageData();
const canEdit = data.can_edit;
const mltaskUrl = `/api/mltasks/${data.mltask.id}/`;

const fields = {
  epochs: $("#epochs"),
  batchSize: $("#batch-size"),
  splitRatio: $("#split-ratio"),
  splitSeed: $("#split-seed"),
  splitMode: $("#split-mode"),
  testDataset: $("#split-test-dataset"),
  samplingMethod: $("#sampling-method"),
  samplingRows: $("#sampling-rows"),
  esPatience: $("#es-patience"),
  esMinDelta: $("#es-min-delta"),
  gpus: $("#runtime-gpus"),
};
const memoryGrowth = $("#runtime-memory-growth");
const modeRadios = [$("#mode-standard"), $("#mode-advanced")];
const keepRadios = [$("#keep-best"), $("#keep-last")];
const earlyStopping = $("#early-stopping");
const metricSelect = $("#metric");
const stratify = $("#split-stratify"); // absent for regression
const saveButton = $("#save");
const trainButton = $("#train");
const validateButton = $("#validate");

// What the server holds as far as this page knows; "dirty" means the form differs from it.
let saved = fromServer(data.mltask);
// The first target's prediction type as saved: its saved metric is shown even when not offered.
let savedFirstType = data.mltask.targets?.[0]?.prediction_type || "";
let savedCustomScore = Boolean(data.mltask.training?.metrics?.custom_score);
// The teammate's version from the last 409, for "keep mine" / "take theirs".
let conflict = null;
// Editors showing a failed session's line: the mark goes with the next edit.
const marked = new Set();

// Targets as the PATCH takes them: what the page compares to know whether they changed.
function targetSpecs(targets) {
  return targets.map(({ name, prediction_type: type }) => ({ name, prediction_type: type }));
}

function fromServer(mltask) {
  return {
    version: mltask.version,
    updatedBy: mltask.updated_by,
    targets: JSON.stringify(targetSpecs(mltask.targets ?? [])),
    code: mltask.architecture_code,
    epochs: String(mltask.training?.epochs ?? ""),
    batchSize: String(mltask.training?.batch_size ?? ""),
    features: JSON.stringify(mltask.features ?? []),
    preprocessingCode: mltask.preprocessing_code ?? "",
    splitRatio: String(mltask.split?.train_ratio ?? ""),
    splitSeed: String(mltask.split?.seed ?? ""),
    stratify: Boolean(mltask.split?.stratify),
    splitMode: mltask.split?.mode ?? "random",
    testDataset: String(mltask.split?.test_dataset ?? ""),
    samplingMethod: mltask.split?.sampling?.method ?? "all",
    samplingRows: String(mltask.split?.sampling?.rows ?? ""),
    // A blank metric means the type's default, as the runner reads it.
    metric: mltask.metric || data.metrics.defaults[mltask.targets?.[0]?.prediction_type] || "",
    ...trainingSettings(mltask.training, data.default_training),
  };
}

// The server's version becomes the page's base (after a save, a 409, "take theirs").
function adopt(mltask) {
  saved = fromServer(mltask);
  savedFirstType = mltask.targets?.[0]?.prediction_type || "";
  savedCustomScore = Boolean(mltask.training?.metrics?.custom_score);
}

// An editor that drops its error mark on the first edit and tracks unsaved changes.
function markedEditorChange(view) {
  if (marked.has(view)) {
    marked.delete(view);
    clearMarks(view);
  }
  refreshDirty();
}

const editor = createCodeEditor($("#architecture-editor"), {
  doc: saved.code,
  readOnly: !canEdit,
  label: "Architecture code",
  onChange: () => markedEditorChange(editor),
});

const trainingEditor = createCodeEditor($("#training-editor"), {
  doc: saved.trainingCode,
  readOnly: !canEdit,
  label: "Training code",
  onChange: () => markedEditorChange(trainingEditor),
});

const preprocessingEditor = createCodeEditor($("#preprocessing-editor"), {
  doc: saved.preprocessingCode,
  readOnly: !canEdit,
  label: "Preprocessing code",
  onChange: () => markedEditorChange(preprocessingEditor),
});

const featuresEditor = createFeaturesEditor($("#features-table tbody"), {
  features: data.mltask.features ?? [],
  schema: data.handling_schema,
  lastModel: data.last_model,
  readOnly: !canEdit,
  onChange: () => refreshDirty(),
});

// Dataset columns in order with their types, from the "add a target" list (editors only).
const columnChoice = $("#new-target");
const columns = columnChoice
  ? [...columnChoice.options].filter((o) => o.value).map((o) => ({ name: o.value, type: o.dataset.type }))
  : [];
// Feature rows of columns made targets on this page: a column un-targeted before saving gets its
// own handling back rather than the defaults.
const parked = new Map();

const targetsEditor = createTargetsEditor($("#targets-table tbody"), {
  targets: data.mltask.targets ?? [],
  readOnly: !canEdit,
  onChange: (kind, name) => {
    // As the server does on save: a new target leaves the features, a removed one comes back.
    if (kind === "added") moveToTargets(name);
    if (kind === "removed") moveToFeatures(name);
    showColumnChoices();
    showMetricChoices();
    refreshDirty();
  },
});

function moveToTargets(name) {
  const features = featuresEditor.get();
  const feature = features.find((f) => f.name === name);
  if (feature) parked.set(name, feature);
  featuresEditor.set(features.filter((f) => f.name !== name));
}

function moveToFeatures(name) {
  const type = columns.find((c) => c.name === name)?.type;
  const feature = parked.get(name) ?? defaultFeature(name, type, data.handling_schema);
  parked.delete(name);
  const order = columns.map((c) => c.name);
  featuresEditor.set(insertInColumnOrder(featuresEditor.get(), feature, order));
}

// A column already a target cannot be added again.
function showColumnChoices() {
  if (!columnChoice) return;
  const targets = new Set(targetsEditor.names());
  for (const option of columnChoice.options) option.disabled = Boolean(option.value) && targets.has(option.value);
  if (columnChoice.selectedOptions[0]?.disabled) columnChoice.value = "";
}

function addTarget() {
  if (!columnChoice.value) {
    showMessage("Choose the column to predict, then Add target.", "info");
    return;
  }
  targetsEditor.add(columnChoice.value);
  columnChoice.value = "";
}

function showTitle(targets) {
  $("#mltask-title").textContent = targets.map((t) => t.name).join(", ");
}

// The metrics of the first target's prediction type; none while that type is still to be guessed.
function firstTargetType() {
  return targetsEditor.get()[0]?.prediction_type || "";
}

// `wanted`: the metric to show when this type offers it (by default, the one shown now).
function showMetricChoices(wanted = metricSelect.value) {
  const type = firstTargetType();
  // "Custom Score" (the Training code's score()) while the saved Metrics settings report it.
  const custom = savedCustomScore && data.metrics.custom_score ? [data.metrics.custom_score] : [];
  const choices = data.metrics.names[type] && [...data.metrics.names[type], ...custom];
  const note = $("#metric-note");
  if (!choices) {
    metricSelect.disabled = true;
    note.textContent = "Its choices follow the first target's prediction type, known once saved.";
    showMetricName();
    return;
  }
  metricSelect.disabled = !canEdit;
  note.textContent = "";
  const names = choices.map((choice) => choice.name);
  // A metric of another type gives way to the saved one (back to the saved type) or to this
  // type's default, as the server does when the type changes.
  const fallback = type === savedFirstType && saved.metric ? saved.metric : data.metrics.defaults[type];
  const value = names.includes(wanted) ? wanted : fallback;
  fillMetricSelect(metricSelect, choices, value, data.metrics.defaults[type]);
  showMetricName();
}

// Where the page names the optimization metric: the keep and early-stopping options, its note.
function showMetricName() {
  const metric = metricSelect.value;
  const text = metricLogName(metric, targetsEditor.names());
  for (const node of document.querySelectorAll(".metric-name")) node.textContent = text;
  $("#metric-log-name").textContent = text;
  const known = [...Object.values(data.metrics.names).flat(), data.metrics.custom_score].filter(Boolean);
  const choice = known.find((c) => c.name === metric);
  $("#metric-direction").textContent = choice && !choice.greater_is_better ? "lower is better" : "higher is better";
}

function trainingMode() {
  return modeRadios.find((radio) => radio.checked)?.value || "standard";
}

// Standard shows epochs and batch size, Advanced the code; the kept-model options apply to both.
function showTrainingMode() {
  for (const node of document.querySelectorAll("[data-training-mode]")) {
    node.hidden = node.dataset.trainingMode !== trainingMode();
  }
  if (trainingMode() === "advanced") trainingEditor.requestMeasure(); // it was laid out while hidden
  const off = !canEdit || !earlyStopping.checked;
  fields.esPatience.disabled = off;
  fields.esMinDelta.disabled = off;
}

function setTrainingForm(settings) {
  for (const radio of modeRadios) radio.checked = radio.value === settings.trainingMode;
  for (const radio of keepRadios) radio.checked = radio.value === settings.keep;
  earlyStopping.checked = settings.esEnabled;
  fields.esPatience.value = settings.esPatience;
  fields.esMinDelta.value = settings.esMinDelta;
  fields.gpus.value = settings.gpus;
  memoryGrowth.checked = settings.memoryGrowth;
  if (getText(trainingEditor) !== settings.trainingCode) setText(trainingEditor, settings.trainingCode);
  showTrainingMode();
}

function current() {
  return {
    targets: JSON.stringify(targetsEditor.get()),
    code: getText(editor),
    epochs: fields.epochs.value.trim(),
    batchSize: fields.batchSize.value.trim(),
    features: JSON.stringify(featuresEditor.get()),
    preprocessingCode: getText(preprocessingEditor),
    splitRatio: fields.splitRatio.value.trim(),
    splitSeed: fields.splitSeed.value.trim(),
    splitMode: fields.splitMode.value,
    testDataset: fields.testDataset.value,
    samplingMethod: fields.samplingMethod.value,
    samplingRows: fields.samplingRows.value.trim(),
    stratify: stratify ? stratify.checked : saved.stratify,
    metric: metricSelect.value,
    trainingMode: trainingMode(),
    trainingCode: getText(trainingEditor),
    keep: keepRadios.find((radio) => radio.checked)?.value || "best",
    esEnabled: earlyStopping.checked,
    esPatience: fields.esPatience.value.trim(),
    esMinDelta: fields.esMinDelta.value.trim(),
    gpus: fields.gpus.value.trim(),
    memoryGrowth: memoryGrowth.checked,
  };
}

const TRAINING_KEYS = [
  "epochs",
  "batchSize",
  "trainingMode",
  "trainingCode",
  "keep",
  "esEnabled",
  "esPatience",
  "esMinDelta",
  "gpus",
  "memoryGrowth",
];

const SPLIT_KEYS = ["splitRatio", "splitSeed", "stratify", "splitMode", "testDataset", "samplingMethod", "samplingRows"];

// Show the fields of the chosen split mode only; N only when sampling.
function showSplitFields() {
  for (const node of document.querySelectorAll("[data-split]")) node.hidden = node.dataset.split !== fields.splitMode.value;
  fields.samplingRows.hidden = fields.samplingMethod.value === "all";
}

function isDirty() {
  const now = current();
  return ["targets", "code", "preprocessingCode", "features", "metric", ...TRAINING_KEYS, ...SPLIT_KEYS].some(
    (key) => now[key] !== saved[key],
  );
}

function refreshDirty() {
  $("#dirty").hidden = !isDirty();
}

function showRevision() {
  $("#revision").textContent = `version ${saved.version}${saved.updatedBy ? `, saved by ${saved.updatedBy}` : ""}`;
  showVerdictAge();
}

// "12" → 12; anything else goes as typed, so the server's message names the bad value.
function asInteger(text) {
  return /^\d+$/.test(text) ? Number(text) : text;
}

function asNumber(text) {
  return text !== "" && Number.isFinite(Number(text)) ? Number(text) : text;
}

function trainingPayload(sent) {
  const training = {
    mode: sent.trainingMode,
    epochs: asInteger(sent.epochs),
    batch_size: asInteger(sent.batchSize),
    keep: sent.keep,
    early_stopping: {
      enabled: sent.esEnabled,
      patience: asInteger(sent.esPatience),
      min_delta: asNumber(sent.esMinDelta),
    },
    runtime: { gpus: gpusValue(sent.gpus), memory_growth: sent.memoryGrowth },
  };
  if (sent.trainingCode !== saved.trainingCode) training.code = sent.trainingCode;
  return training;
}

function loadIntoForm(mltask) {
  adopt(mltask);
  parked.clear();
  targetsEditor.set(mltask.targets);
  showColumnChoices();
  showMetricChoices(saved.metric);
  setTrainingForm(saved);
  showTitle(mltask.targets);
  fields.epochs.value = saved.epochs;
  fields.batchSize.value = saved.batchSize;
  featuresEditor.set(JSON.parse(saved.features));
  if (getText(preprocessingEditor) !== saved.preprocessingCode) setText(preprocessingEditor, saved.preprocessingCode);
  fields.splitRatio.value = saved.splitRatio;
  fields.splitSeed.value = saved.splitSeed;
  fields.splitMode.value = saved.splitMode;
  fields.testDataset.value = saved.testDataset;
  fields.samplingMethod.value = saved.samplingMethod;
  fields.samplingRows.value = saved.samplingRows;
  showSplitFields();
  if (stratify) stratify.checked = saved.stratify;
  if (getText(editor) !== saved.code) setText(editor, saved.code);
  showRevision();
  refreshDirty();
}

// Returns true when the server holds the form's content afterwards.
async function save() {
  const sent = current();
  const payload = { version: saved.version, training: trainingPayload(sent) };
  if (sent.targets !== saved.targets) payload.targets = JSON.parse(sent.targets);
  // Unchanged code is left out, so untouched default code can follow new targets and types.
  if (sent.code !== saved.code) payload.architecture_code = sent.code;
  if (sent.features !== saved.features) payload.features = JSON.parse(sent.features);
  if (sent.preprocessingCode !== saved.preprocessingCode) payload.preprocessing_code = sent.preprocessingCode;
  if (SPLIT_KEYS.some((key) => sent[key] !== saved[key])) payload.split = splitPayload(sent);
  // While the first target's type is to be guessed, the server picks the metric that fits it.
  if (sent.metric !== saved.metric && !metricSelect.disabled) payload.metric = sent.metric;
  const note = $("#save-message")?.value.trim() || "";
  if (note) payload.message = note; // kept with the revision this save makes
  clearMessage();
  try {
    const mltask = await tracked(patchJSON(mltaskUrl, payload));
    $("#conflict").hidden = true;
    const typedSince = getText(editor) !== sent.code;
    const now = current();
    adopt(mltask);
    // Guessed types and recomputed classes come back from the server, unless edited since.
    if (current().targets === sent.targets) {
      targetsEditor.set(mltask.targets);
      parked.clear();
    }
    showTitle(mltask.targets);
    // The server may rewrite default code for a new type; text typed during the save stays.
    if (!typedSince && getText(editor) !== saved.code) setText(editor, saved.code);
    if (current().features === sent.features) featuresEditor.set(JSON.parse(saved.features));
    // The server's form of what was sent ("1e-3" reads 0.001); fields edited during the save stay.
    for (const [key, field] of [["esPatience", fields.esPatience], ["esMinDelta", fields.esMinDelta]]) {
      if (now[key] === sent[key]) field.value = saved[key];
    }
    showMetricChoices(now.metric === sent.metric ? saved.metric : now.metric); // a guessed type is known now
    showRevision();
    refreshDirty();
    showMessage(`Saved — version ${saved.version}.`, "ok");
    if (note && $("#save-message").value.trim() === note) $("#save-message").value = "";
    revisionHistory.refresh();
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) {
      conflict = error.body?.current || null;
      $("#conflict").hidden = !conflict;
      showConflict(error.body); // who saved since, and the diff from the version edited here
    }
    showMessage(error.message, "error");
    return false;
  }
}

function splitPayload(sent) {
  const ratio = Number(sent.splitRatio);
  const split = { mode: sent.splitMode, seed: asInteger(sent.splitSeed) };
  if (sent.splitMode === "explicit") {
    split.test_dataset = asInteger(sent.testDataset);
  } else {
    split.train_ratio = sent.splitRatio === "" || Number.isNaN(ratio) ? sent.splitRatio : ratio;
    split.stratify = sent.stratify;
  }
  split.sampling =
    sent.samplingMethod === "all" ? { method: "all" } : { method: sent.samplingMethod, rows: asInteger(sent.samplingRows) };
  return split;
}

function keepMine() {
  if (!conflict) return;
  // Their version becomes the base and the form stays as it is: the next save sends my content
  // against their version number, so it replaces theirs knowingly.
  adopt(conflict);
  conflict = null;
  $("#conflict").hidden = true;
  showRevision();
  refreshDirty();
  showMessage("Your edits are kept; Save now to replace the teammate's version with yours.", "info");
}

function takeTheirs() {
  if (!conflict) return;
  loadIntoForm(conflict);
  conflict = null;
  $("#conflict").hidden = true;
  showMessage("Loaded the latest version; your edits were discarded.", "info");
}

async function train() {
  if (isDirty() && !(await save())) return; // never train something other than what is shown
  try {
    const session = await postJSON(`${mltaskUrl}sessions/`, {});
    window.location.assign(`${data.sessions_base}${session.id}/`);
  } catch (error) {
    showMessage(error.message, "error");
    // Refused because this version failed Validate: show that verdict and its lines again.
    if (error instanceof ApiError && error.status === 400 && /failed validation/i.test(error.message)) {
      await showStoredVerdict();
    }
  }
}

// ---------------------------------------------------------------- Validate

const validation = {
  panel: $("#validation"),
  running: $("#validation-running"),
  elapsed: $("#validation-elapsed"),
  result: $("#validation-result"),
  title: $("#validation-title"),
  meta: $("#validation-meta"),
  errors: $("#validation-errors"),
  summary: $("#validation-summary"),
  summaryText: $("#validation-summary-text"),
};
// The verdict on show ({version, ok, errors, ...}), to say when a save made it stale.
let verdict = null;

function editorFor(tab) {
  return { architecture: editor, preprocessing: preprocessingEditor, training: trainingEditor }[tab] || null;
}

// The saved code of each tab: what a verdict's line numbers refer to.
function savedTexts() {
  return { architecture: saved.code, preprocessing: saved.preprocessingCode, training: saved.trainingCode };
}

function showValidating() {
  const started = Date.now();
  validation.panel.hidden = false;
  validation.panel.className = "card validation validation-running-state";
  validation.running.hidden = false;
  validation.result.hidden = true;
  validation.elapsed.textContent = "";
  const timer = window.setInterval(() => {
    validation.elapsed.textContent = `${Math.round((Date.now() - started) / 1000)} s`;
  }, 1000);
  return () => {
    window.clearInterval(timer);
    validation.running.hidden = true;
  };
}

// `fresh`: the endpoint's answer just now (with summary, rows, seconds); otherwise the ML task's
// stored verdict. `texts`: the code the verdict checked, per tab, when the page knows it.
function showVerdict(result, { fresh = false, texts = null } = {}) {
  verdict = result;
  validation.panel.hidden = false;
  validation.running.hidden = true;
  validation.result.hidden = false;
  validation.panel.className = `card validation ${result.ok ? "validation-ok" : "validation-failed"}`;
  const errors = result.errors || [];
  if (result.ok) {
    validation.title.textContent = validHeadline(result);
  } else {
    const phase = errors[0]?.phase;
    validation.title.textContent = `✗ Not valid${phase ? ` — ${phase} failed` : ""}`;
  }
  validation.errors.replaceChildren(...errors.map(errorItem));
  validation.errors.hidden = !errors.length;
  const summary = fresh && result.ok ? result.summary || "" : "";
  validation.summary.hidden = !summary;
  validation.summaryText.textContent = summary;
  validation.summary.open = Boolean(summary);
  showVerdictAge(fresh);
  markVerdict(result, texts);
}

function errorItem(error) {
  const where = errorWhere(error);
  const tab = errorTab(error);
  const target = editorFor(tab);
  const children = [
    where ? el("strong", { className: "validation-where" }, `${where}: `) : null,
    el("span", { className: "error-message" }, error.message || "(no message)"),
  ];
  if (target) {
    const label = error.line ? `Show line ${error.line}` : `Show the ${tab} code`;
    const button = el("button", { type: "button", className: "button-link" }, label);
    button.addEventListener("click", () => revealError(tab, error.line));
    children.push(" ", button);
  }
  return el("li", { dataset: { tab: tab || "", line: String(error.line || ""), phase: error.phase || "" } }, ...children);
}

function revealError(tab, line) {
  const target = editorFor(tab);
  if (!target) return;
  if (tab === "training" && trainingMode() !== "advanced") {
    for (const radio of modeRadios) radio.checked = radio.value === "advanced";
    showTrainingMode();
    refreshDirty();
  }
  $(`#${tab}`).scrollIntoView({ block: "start" });
  if (line) revealLine(target, line);
  target.focus();
}

// Red markers on the lines the errors name, in the editors that still hold the checked code; the
// markers go with the next edit of that code, as a failed session's do.
function markVerdict(result, texts) {
  for (const tab of ["architecture", "preprocessing", "training"]) {
    const view = editorFor(tab);
    const marks = (result.errors || [])
      .filter((error) => error.tab === tab && error.line)
      .map((error) => ({ line: error.line, message: `Validate: ${error.message}` }));
    const unchanged = texts && getText(view) === texts[tab];
    if (marks.length && unchanged) {
      setMarks(view, marks);
      marked.add(view);
    } else if (marked.has(view) && texts) {
      clearMarks(view); // an earlier verdict's or session's mark: this newer run says otherwise
      marked.delete(view);
    }
  }
}

// The verdict's version and age; stale once a save made a newer version.
function showVerdictAge(fresh = false) {
  if (!verdict) return;
  const stale = verdict.version !== saved.version;
  validation.panel.classList.toggle("validation-stale", stale);
  const parts = [`Version ${verdict.version}`];
  if (fresh && verdict.rows) parts.push(`checked on the first ${verdict.rows.toLocaleString("en-US")} rows`);
  else if (verdict.at) parts.push(`checked ${timeAgo(verdict.at)}`);
  if (fresh && typeof verdict.seconds === "number") parts.push(`in ${verdict.seconds.toFixed(1)} s`);
  let text = parts.join(", ");
  if (stale) {
    text += `. The design was saved since (version ${saved.version}): ${canEdit ? "Validate again to check it." : "this verdict may no longer hold."}`;
  } else if (verdict.ok) {
    text += ". No training was run; text and dummy-encoded shapes come from these rows, so they may differ on the full data.";
  } else {
    text += `. Train refuses this version: fix the code${canEdit ? ", Save, and Validate again" : ""}.`;
  }
  validation.meta.textContent = text;
}

function showValidateFailure(message) {
  verdict = null;
  validation.panel.hidden = false;
  validation.panel.className = "card validation validation-failed";
  validation.result.hidden = false;
  validation.title.textContent = "Validate could not run";
  validation.meta.textContent = message;
  validation.errors.replaceChildren();
  validation.errors.hidden = true;
  validation.summary.hidden = true;
}

async function validate() {
  // Validate checks the saved design: unsaved edits are saved first, as Train does.
  if (isDirty() && !(await save())) return;
  const texts = savedTexts();
  const version = saved.version;
  const done = showValidating();
  try {
    const result = await postJSON(`${mltaskUrl}validate/`, {});
    // A teammate's save meanwhile: the verdict is about their code, not the lines shown here.
    showVerdict(result, { fresh: true, texts: result.version === version ? texts : null });
    if (result.version !== version) {
      validation.meta.textContent += ` It checked version ${result.version}, saved by a teammate meanwhile; this page shows version ${version}.`;
    }
  } catch (error) {
    showValidateFailure(error.message);
  } finally {
    done();
  }
}

// The ML task's last verdict, when it is about the saved version (page load, a refused Train).
async function showStoredVerdict(stored = null) {
  let record = stored;
  if (!record) {
    try {
      record = (await getJSON(mltaskUrl)).validation;
    } catch {
      return;
    }
  }
  if (record && record.version === saved.version) showVerdict(record, { texts: isDirty() ? null : savedTexts() });
}

// A failed session links here with ?tab=architecture|preprocessing|training&line=N: mark that line.
function markLineFromUrl() {
  const params = new URLSearchParams(window.location.search);
  const line = Number(params.get("line"));
  const tab = params.get("tab") || "architecture";
  const target = { architecture: editor, preprocessing: preprocessingEditor, training: trainingEditor }[tab];
  if (!line || !target) return;
  const session = params.get("session");
  if (tab === "training" && trainingMode() !== "advanced") {
    // The session ran the Training code; the design went back to Standard since. Show the code
    // (an unsaved switch, which the user may undo).
    for (const radio of modeRadios) radio.checked = radio.value === "advanced";
    showTrainingMode();
    const who = session ? `Session ${session}` : "The session";
    const switched = canEdit ? "the form switched to Advanced to show it (not saved yet)" : "shown below";
    if (canEdit) refreshDirty();
    showMessage(`${who} failed in the Training code, which only Advanced mode runs: ${switched}.`, "info");
  }
  markLine(target, line, session ? `Session ${session} failed at this line; see its error panel.` : "Error here.");
  marked.add(target); // cleared on the next edit of that code
  $(`#${tab}`).scrollIntoView({ block: "start" });
}

// Which workers (and GPUs) there are, for the Runtime settings; a failure leaves the line as it is.
async function showWorkers() {
  try {
    $("#workers-summary").textContent = describeWorkers(await getJSON("/api/workers/"));
  } catch {
    $("#workers-summary").textContent = "(the worker list could not be read)";
  }
}

if (canEdit) {
  for (const input of Object.values(fields)) input.addEventListener("input", refreshDirty);
  stratify?.addEventListener("change", refreshDirty);
  for (const input of [...modeRadios, ...keepRadios, earlyStopping, memoryGrowth]) {
    input.addEventListener("change", () => {
      showTrainingMode();
      refreshDirty();
    });
  }
  metricSelect.addEventListener("change", () => {
    showMetricName();
    refreshDirty();
  });
  for (const select of [fields.splitMode, fields.samplingMethod, fields.testDataset]) {
    select.addEventListener("change", () => {
      showSplitFields();
      refreshDirty();
    });
  }
  saveButton.addEventListener("click", () => busy(saveButton, save));
  $("#add-target").addEventListener("click", addTarget);
  trainButton.addEventListener("click", () => busy(trainButton, train));
  validateButton.addEventListener("click", () => busy(validateButton, validate));
  $("#keep-mine").addEventListener("click", keepMine);
  $("#take-theirs").addEventListener("click", takeTheirs);
  // Ctrl/Cmd-S saves, as in every editor people know.
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
      event.preventDefault();
      busy(saveButton, save);
    }
  });
}
showSplitFields();
showColumnChoices();
showMetricChoices(saved.metric);
fields.gpus.value = saved.gpus;
memoryGrowth.checked = saved.memoryGrowth;
showTrainingMode();
if (data.mltask.validation) showStoredVerdict(data.mltask.validation);
showWorkers();
markLineFromUrl();
createSessionsTable($("#sessions-section"), data);

// Revision history, and a note when a teammate saves while this page is open.
function loadLatest(mltask) {
  clearMessage();
  conflict = null;
  $("#conflict").hidden = true;
  loadIntoForm(mltask);
}
const revisionHistory = createHistory($("#history"), {
  mltaskId: data.mltask.id,
  canEdit,
  getVersion: () => saved.version,
  isDirty,
  onRestored: loadLatest,
});
watchTeammates({
  mltaskId: data.mltask.id,
  getVersion: () => saved.version,
  isDirty,
  load: loadLatest,
  onNewVersion: () => revisionHistory.refresh(),
});
setupDuplicate($("#duplicate"), {
  kind: "mltask",
  id: data.mltask.id,
  project: data.project,
  analysis: data.mltask.analysis,
});
