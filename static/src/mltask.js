// ML task design page: edit the targets and their prediction types, features, split, Architecture
// code and Training settings; Save (compare-and-set on `version`) and Train. A refused save (409)
// never loses the user's edits.
import { ApiError, patchJSON, postJSON } from "./lib/api.js";
import { $, busy, clearMessage, pageData, showMessage } from "./lib/dom.js";
import { clearMarks, createCodeEditor, getText, markLine, setText } from "./lib/editor.js";
import { createFeaturesEditor } from "./lib/features.js";
import { createTargetsEditor, defaultFeature, insertInColumnOrder } from "./lib/mltasks.js";

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
};
const stratify = $("#split-stratify"); // absent for regression
const saveButton = $("#save");
const trainButton = $("#train");

// What the server holds as far as this page knows; "dirty" means the form differs from it.
let saved = fromServer(data.mltask);
// The teammate's version from the last 409, for "keep mine" / "take theirs".
let conflict = null;
let marked = false;

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
  };
}

const editor = createCodeEditor($("#architecture-editor"), {
  doc: saved.code,
  readOnly: !canEdit,
  label: "Architecture code",
  onChange: () => {
    if (marked) {
      marked = false;
      clearMarks(editor);
    }
    refreshDirty();
  },
});

const preprocessingEditor = createCodeEditor($("#preprocessing-editor"), {
  doc: saved.preprocessingCode,
  readOnly: !canEdit,
  label: "Preprocessing code",
  onChange: () => refreshDirty(),
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
  };
}

const SPLIT_KEYS = ["splitRatio", "splitSeed", "stratify", "splitMode", "testDataset", "samplingMethod", "samplingRows"];

// Show the fields of the chosen split mode only; N only when sampling.
function showSplitFields() {
  for (const node of document.querySelectorAll("[data-split]")) node.hidden = node.dataset.split !== fields.splitMode.value;
  fields.samplingRows.hidden = fields.samplingMethod.value === "all";
}

function isDirty() {
  const now = current();
  return ["targets", "code", "preprocessingCode", "epochs", "batchSize", "features", ...SPLIT_KEYS].some(
    (key) => now[key] !== saved[key],
  );
}

function refreshDirty() {
  $("#dirty").hidden = !isDirty();
}

function showRevision() {
  $("#revision").textContent = `version ${saved.version}${saved.updatedBy ? `, saved by ${saved.updatedBy}` : ""}`;
}

// "12" → 12; anything else goes as typed, so the server's message names the bad value.
function asInteger(text) {
  return /^\d+$/.test(text) ? Number(text) : text;
}

function loadIntoForm(mltask) {
  saved = fromServer(mltask);
  parked.clear();
  targetsEditor.set(mltask.targets);
  showColumnChoices();
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
  const payload = {
    version: saved.version,
    training: { epochs: asInteger(sent.epochs), batch_size: asInteger(sent.batchSize) },
  };
  if (sent.targets !== saved.targets) payload.targets = JSON.parse(sent.targets);
  // Unchanged code is left out, so untouched default code can follow new targets and types.
  if (sent.code !== saved.code) payload.architecture_code = sent.code;
  if (sent.features !== saved.features) payload.features = JSON.parse(sent.features);
  if (sent.preprocessingCode !== saved.preprocessingCode) payload.preprocessing_code = sent.preprocessingCode;
  if (SPLIT_KEYS.some((key) => sent[key] !== saved[key])) payload.split = splitPayload(sent);
  clearMessage();
  try {
    const mltask = await patchJSON(mltaskUrl, payload);
    $("#conflict").hidden = true;
    const typedSince = getText(editor) !== sent.code;
    saved = fromServer(mltask);
    // Guessed types and recomputed classes come back from the server, unless edited since.
    if (current().targets === sent.targets) {
      targetsEditor.set(mltask.targets);
      parked.clear();
    }
    showTitle(mltask.targets);
    // The server may rewrite default code for a new type; text typed during the save stays.
    if (!typedSince && getText(editor) !== saved.code) setText(editor, saved.code);
    if (current().features === sent.features) featuresEditor.set(JSON.parse(saved.features));
    showRevision();
    refreshDirty();
    showMessage(`Saved — version ${saved.version}.`, "ok");
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) {
      conflict = error.body?.current || null;
      $("#conflict").hidden = !conflict;
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
  saved = fromServer(conflict);
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
  }
}

// A failed session links here with ?line=N: mark that line of the Architecture code.
function markLineFromUrl() {
  const params = new URLSearchParams(window.location.search);
  const line = Number(params.get("line"));
  const tab = params.get("tab") || "architecture";
  const target = { architecture: editor, preprocessing: preprocessingEditor }[tab];
  if (!line || !target) return;
  const session = params.get("session");
  markLine(target, line, session ? `Session ${session} failed at this line; see its error panel.` : "Error here.");
  marked = tab === "architecture"; // the Architecture editor clears its mark on the next edit
  $(`#${tab}`).scrollIntoView({ block: "start" });
}

if (canEdit) {
  for (const input of Object.values(fields)) input.addEventListener("input", refreshDirty);
  stratify?.addEventListener("change", refreshDirty);
  for (const select of [fields.splitMode, fields.samplingMethod, fields.testDataset]) {
    select.addEventListener("change", () => {
      showSplitFields();
      refreshDirty();
    });
  }
  saveButton.addEventListener("click", () => busy(saveButton, save));
  $("#add-target").addEventListener("click", addTarget);
  trainButton.addEventListener("click", () => busy(trainButton, train));
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
markLineFromUrl();
