// Session page: the live view while it trains, the report once it ended. The embedded snapshot
// is drawn at once; the websocket (lib/live.js) then brings every change — no polling.
import { getJSON, postJSON } from "./lib/api.js";
import { LearningCurves } from "./lib/charts.js";
import { $, busy, el, formatNumber, pageData, showMessage } from "./lib/dom.js";
import { isFinal, SessionStream } from "./lib/live.js";
import { mountReport } from "./lib/report.js";
import { mountScoring } from "./lib/scoring.js";

const data = pageData();
const initial = data.session;
const sessionApi = `/api/sessions/${initial.id}/`;
const MAX_CONSOLE_LINES = 2000;

const curves = new LearningCurves($("#charts"), $("#metric-select"), $("#charts-empty"), data.metric || "");

const QUEUE_NOTES = {
  queued: "Waiting for a training worker to take this session.",
  starting: "A worker took the session and is preparing the data.",
};

function totalEpochs(state) {
  // Advanced mode's code decides the epochs: known from the first progress event on.
  if (data.training_mode === "advanced" && !state.progress) return 0;
  return state.epochs_total || data.planned_epochs || 0;
}

function renderStatus(state) {
  const chip = $("#status");
  chip.textContent = state.status;
  chip.className = `chip chip-${state.status}`;
  const final = isFinal(state.status);
  $("#phase").textContent = final ? "" : state.phase || "";
  const aborting = !final && (state.abort_requested || state.phase === "aborting");
  const stopping = !final && !aborting && (state.interrupt_requested || state.phase === "stopping");
  const stopNote = $("#stopping");
  stopNote.textContent = aborting ? "aborting…" : "stopping…";
  stopNote.hidden = !(stopping || aborting);
  const actions = $("#session-actions");
  if (actions) actions.hidden = final;
  renderContinue(state);
  if ((stopping || aborting) && $("#interrupt")) $("#interrupt").disabled = true;
  if (aborting && $("#abort")) $("#abort").disabled = true;
  const note = $("#queue-note");
  note.textContent = queueNote(state);
  note.hidden = !note.textContent;
  renderElapsed(state);
  const gpus = state.devices?.gpus || [];
  const onGpus = gpus.length ? ` · GPU ${gpus.join(", ")}` : state.devices?.gpus ? " · CPU" : "";
  $("#worker").textContent = state.worker ? `on ${state.worker}${onGpus}` : "";
  renderConnection();
  document.title = `Session ${state.id} · ${state.status} · DL Studio`;
}

function renderEpochProgress(state) {
  const total = totalEpochs(state);
  const done = state.epochs_done || 0;
  const bar = $("#epoch-progress");
  bar.max = Math.max(total, done, 1);
  bar.value = done;
  const early = state.status === "succeeded" && total && done < total ? " (stopped early)" : "";
  $("#epoch-label").textContent = (total ? `epoch ${done} of ${total}` : `epoch ${done}`) + early;
  $("#eta").textContent = isFinal(state.status) ? "" : eta(state, total, done);
}

// Remaining time from the mean epoch duration so far: good enough to decide "coffee or not".
function eta(state, total, done) {
  const rows = (state.metrics || []).filter((row) => !row.partial && row.seconds);
  if (!rows.length || !total || done >= total) return "";
  const mean = rows.reduce((sum, row) => sum + row.seconds, 0) / rows.length;
  const seconds = Math.round(mean * (total - done));
  const text = seconds >= 3600 ? `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`
    : seconds >= 60 ? `${Math.floor(seconds / 60)} min ${seconds % 60} s` : `${seconds} s`;
  return `about ${text} left`;
}

// "Queued — position 2 · no GPU worker online": where it stands (the API's `queue`), else the status's note.
function queueNote(state) {
  const queue = state.status === "queued" ? state.queue : null;
  if (!queue) return QUEUE_NOTES[state.status] || "";
  const who = queue.needs_gpu ? "GPU worker" : "worker";
  const nobody = queue.workers_online ? "" : ` No ${who} is online: it starts when one is.`;
  const place = queue.position > 1 ? `position ${queue.position} in the queue` : "next in the queue";
  return `Waiting for a ${who} — ${place}.${nobody}`;
}

// Time since a worker started it (or its whole run, once ended): ticks each second while it runs.
let startedAt = initial.started_at ? Date.parse(initial.started_at) : null;
function renderElapsed(state) {
  if (!startedAt && state.started_at) startedAt = Date.parse(state.started_at);
  if (!startedAt && state.status === "running") startedAt = Date.now(); // the page saw it start
  const end = isFinal(state.status) ? (state.ended_at ? Date.parse(state.ended_at) : null) : Date.now();
  $("#elapsed").textContent = startedAt && end ? `${duration((end - startedAt) / 1000)} elapsed` : "";
}

function duration(seconds) {
  const whole = Math.max(0, Math.round(seconds));
  if (whole >= 3600) return `${Math.floor(whole / 3600)} h ${Math.floor((whole % 3600) / 60)} min`;
  return whole >= 60 ? `${Math.floor(whole / 60)} min ${whole % 60} s` : `${whole} s`;
}

// The batch rate of the current epoch, for "about 12 s left in this epoch".
let epochClock = { epoch: null, at: 0, batch: 0 };
function batchEta(progress) {
  const now = Date.now();
  if (epochClock.epoch !== progress.epoch || progress.batch < epochClock.batch) {
    epochClock = { epoch: progress.epoch, at: now, batch: progress.batch };
    return "";
  }
  const done = progress.batch - epochClock.batch;
  const seconds = now - epochClock.at;
  if (done <= 0 || seconds < 1000) return "";
  const left = ((progress.of - progress.batch) * seconds) / done / 1000;
  return left >= 1 ? ` · about ${duration(left)} left in this epoch` : "";
}

function renderBatch(state) {
  const progress = state.progress;
  const bar = $("#batch-progress");
  // Batches only matter while it trains; the report keeps the epoch bar alone.
  $("#batch-row").hidden = isFinal(state.status);
  if (!progress || !progress.of) {
    bar.max = 1;
    bar.value = 0;
    $("#batch-label").textContent = "batch –";
    return;
  }
  bar.max = progress.of;
  bar.value = Math.min(progress.batch, progress.of);
  $("#batch-label").textContent = `batch ${progress.batch} of ${progress.of}${batchEta(progress)}`;
}

// The epoch table's columns: every metric name seen, in the order it first appeared.
let tableColumns = [];

function renderEpochTable(rows) {
  const names = [];
  for (const row of rows) for (const name of Object.keys(row.values || {})) if (!names.includes(name)) names.push(name);
  const table = $("#epoch-table");
  $("#epochs-empty").hidden = rows.length > 0;
  if (names.join("\n") !== tableColumns.join("\n")) {
    tableColumns = names;
    table.tHead.replaceChildren(
      el("tr", {}, el("th", { className: "num" }, "epoch"), el("th", { className: "num" }, "seconds"),
        names.map((name) => el("th", { className: "num", scope: "col" }, name))),
    );
  }
  table.tBodies[0].replaceChildren(...rows.map(epochRow));
}

function epochRow(row) {
  const kept = row.epoch === keptEpoch;
  const title = [row.partial && "interrupted during this epoch", kept && "the model kept this epoch's weights"];
  return el(
    "tr",
    { dataset: { epoch: String(row.epoch) }, className: [row.partial && "row-muted", kept && "row-kept"].filter(Boolean).join(" ") },
    el("td", { className: "num", title: title.filter(Boolean).join("; ") }, kept ? "★ " : "", row.epoch, row.partial ? " (partial)" : ""),
    el("td", { className: "num" }, row.seconds ? row.seconds.toFixed(1) : "–"),
    tableColumns.map((name) => el("td", { className: "num" }, formatNumber(row.values?.[name]))),
  );
}

function renderCharts(stream) {
  const rows = stream.epochRows();
  curves.update(rows);
  renderEpochTable(rows);
}

// The epoch whose weights the model has (model_info.kept, or the live `kept` event), once known.
let keptEpoch = null;

function shortNumber(value) {
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e6)) return value.toExponential(3);
  return String(Number(value.toPrecision(4)));
}

function renderKept(state, stream) {
  const kept = state.model?.kept;
  const epoch = kept && Number.isInteger(kept.epoch) ? kept.epoch : null;
  const note = $("#kept");
  note.hidden = epoch === null;
  if (epoch !== null) {
    const value = typeof kept.value === "number" ? ` ${shortNumber(kept.value)}` : "";
    const why = kept.keep === "last" ? "last epoch" : `best ${kept.metric || "by the optimization metric"}${value}`;
    $("#kept-text").textContent = `Model kept: epoch ${epoch} (${why})`;
  }
  curves.setKeptEpoch(epoch);
  if (epoch !== keptEpoch) {
    keptEpoch = epoch;
    renderEpochTable(stream.epochRows());
  }
}

function renderModel(state) {
  const model = state.model;
  if (!model) return;
  $("#model-summary").textContent = model.summary || "(no summary)";
  const shapes = Object.entries(model.input_shapes || {})
    .map(([name, shape]) => `${name}: (${(shape || []).map((d) => (d === null ? "None" : d)).join(", ")})`)
    .join(" · ");
  const params = typeof model.params === "number" ? `${model.params.toLocaleString()} parameters` : "";
  $("#model-params").textContent = [params, shapes].filter(Boolean).join(" · ");
}

function renderConsole(logs) {
  const panel = $("#console");
  panel.replaceChildren(...logs.slice(-MAX_CONSOLE_LINES).map(logLine));
  panel.scrollTop = panel.scrollHeight;
}

function logLine(entry) {
  const text = entry.text.endsWith("\n") ? entry.text : `${entry.text}\n`;
  return el("span", { className: `log log-${entry.stream || "stdout"}` }, text);
}

function appendLog(entry) {
  const panel = $("#console");
  const atBottom = panel.scrollHeight - panel.scrollTop - panel.clientHeight < 30;
  panel.append(logLine(entry));
  while (panel.childNodes.length > MAX_CONSOLE_LINES) panel.firstChild.remove();
  if (atBottom) panel.scrollTop = panel.scrollHeight; // follow the output unless the user scrolled up
}

// Final metrics as a Metric × (Train, Test) table: "Train AUC" and "Test AUC" share a row.
function renderFinal(state) {
  const metrics = state.final_metrics || {};
  const names = Object.keys(metrics);
  $("#final-metrics").hidden = !names.length;
  const rows = new Map(); // base -> {Train, Test, Value}
  for (const name of names) {
    const match = /^(Train|Test) (.+)$/.exec(name);
    const [column, base] = match ? [match[1], match[2]] : ["Value", name];
    if (!rows.has(base)) rows.set(base, {});
    rows.get(base)[column] = metrics[name];
  }
  const columns = ["Train", "Test", "Value"].filter((column) => [...rows.values()].some((row) => column in row));
  const table = $("#final-metrics-table");
  table.tHead.replaceChildren(
    el("tr", {}, el("th", { scope: "col" }, "Metric"), columns.map((c) => el("th", { className: "num", scope: "col" }, c))),
  );
  table.tBodies[0].replaceChildren(
    ...[...rows].map(([base, row]) =>
      el("tr", { dataset: { metric: base } }, el("th", { scope: "row" }, base),
        columns.map((c) => el("td", { className: "num" }, formatNumber(row[c]))))),
  );
}

function renderError(state) {
  const error = state.error;
  const panel = $("#error");
  // Sessions stopped before they started carry a plain message too; failures get the panel.
  if (!error || !error.message) {
    panel.hidden = true;
    return;
  }
  panel.hidden = false;
  panel.classList.toggle("error-panel-info", state.status !== "failed");
  panel.querySelector("h2").firstChild.textContent = state.status === "failed" ? "Training failed " : `Session ${state.status} `;
  const where = [error.phase && `in ${error.phase}`, error.tab && `${error.tab} tab`, error.line && `line ${error.line}`];
  $("#error-where").textContent = where.filter(Boolean).join(", ");
  $("#error-message").textContent = error.message;
  const traceback = $("#error-traceback");
  traceback.textContent = error.traceback || "";
  traceback.hidden = !error.traceback;
  const link = $("#error-link");
  const target = new URL(data.mltask_url, window.location.origin);
  if (error.tab && error.line) {
    target.search = new URLSearchParams({ tab: error.tab, line: String(error.line), session: String(state.id) });
    target.hash = error.tab;
    link.textContent = `Open the ${error.tab} code at line ${error.line}`;
  } else {
    link.textContent = "Open the ML task";
  }
  link.href = target.pathname + target.search + target.hash;
}

// What the runner lacked on a degraded worker (no bwrap, no cgroup...): said, never hidden.
const ISOLATION_EFFECTS = {
  bwrap: "no sandbox: the code could read the worker's files, environment and network",
  "unprivileged uid": "it ran as the worker's own user",
  "cgroup memory": "no memory limit",
  "cgroup pids": "no process limit",
};

function renderIsolation(state) {
  const isolation = state.isolation || {};
  const missing = isolation.missing || [];
  $("#isolation-warning").hidden = !missing.length;
  if (!missing.length) return;
  const parts = missing.map((what) => (ISOLATION_EFFECTS[what] ? `${what} (${ISOLATION_EFFECTS[what]})` : what));
  $("#isolation-text").textContent = `this worker ran the session's code without ${parts.join(", ")}.`;
  $("#isolation-notes").textContent = (isolation.notes || []).join(" · ");
}

// The isolation is stored when the runner starts; a page opened before that asks for it once.
let isolationAsked = false;
async function ensureIsolation(state) {
  if (isolationAsked || state.status === "queued" || Object.keys(state.isolation || {}).length) return;
  isolationAsked = true;
  try {
    const session = await getJSON(sessionApi);
    state.isolation = session.isolation || {};
    state.devices = session.devices || {};
    renderIsolation(state);
    renderStatus(state);
  } catch {
    isolationAsked = false; // a later status tries again
  }
}

function renderAll(state, stream) {
  renderIsolation(state);
  renderStatus(state);
  renderEpochProgress(state);
  renderBatch(state);
  renderCharts(stream);
  renderKept(state, stream);
  renderModel(state);
  renderConsole(state.logs || []);
  renderFinal(state);
  renderError(state);
}

const CONNECTION_TEXT = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  ended: "finished",
};
let connectionKind = "connecting";

// A finished session gets no more updates, whatever the socket does: say so.
function renderConnection() {
  const kind = stream && isFinal(stream.state.status) ? "ended" : connectionKind;
  $("#connection").className = `meta-item connection connection-${kind}`;
  $("#connection-text").textContent = CONNECTION_TEXT[kind] || kind;
}

const stream = new SessionStream(data.socket_path, initial, {
  snapshot: (state) => renderAll(state, stream),
  status: (state) => {
    renderStatus(state);
    renderEpochProgress(state);
    renderBatch(state);
    if (state.status === "running") ensureIsolation(state);
  },
  model: renderModel,
  progress: (state) => {
    renderBatch(state);
    renderEpochProgress(state); // "epoch i of N" follows the epochs the fit plans
  },
  kept: (state) => renderKept(state, stream),
  epoch: (row, state) => {
    renderCharts(stream);
    renderEpochProgress(state);
  },
  log: appendLog,
  done: (state) => {
    renderAll(state, stream);
    ensureIsolation(state);
  },
  connection: (kind) => {
    connectionKind = kind;
    renderConnection();
  },
});

// While it waits, its place in the queue changes as others start: asked every few seconds.
setInterval(async () => {
  if (stream.state.status !== "queued" || document.visibilityState !== "visible") return;
  try {
    stream.state.queue = (await getJSON(sessionApi)).queue;
    renderStatus(stream.state);
  } catch {
    // the next tick tries again
  }
}, 3000);
setInterval(() => {
  if (!isFinal(stream.state.status)) renderElapsed(stream.state);
}, 1000);

async function act(button, action, confirmText) {
  if (confirmText && !window.confirm(confirmText)) return;
  await busy(button, async () => {
    try {
      const summary = await postJSON(`${sessionApi}${action}/`);
      // The answer is the session now; the stream confirms it too, but do not wait for it.
      if (action === "interrupt") stream.state.interrupt_requested = true;
      if (action === "abort") stream.state.abort_requested = true;
      if (isFinal(summary.status)) stream.apply({ ...summary, type: "done" });
      else stream.apply({ type: "status", status: summary.status, phase: stream.state.phase });
    } catch (error) {
      showMessage(error.message, "error");
    }
  });
  renderStatus(stream.state); // after busy() re-enabled the button: a stopping session keeps it off
}

const interruptButton = $("#interrupt");
const abortButton = $("#abort");
if (interruptButton) interruptButton.addEventListener("click", () => act(interruptButton, "interrupt"));
if (abortButton) {
  abortButton.addEventListener("click", () =>
    act(abortButton, "abort", `Abort session ${initial.id}? Training stops now and no model is kept.`));
}

// Continue training (editors, standard mode): an interrupted or finished session goes on from its
// last complete epoch as a new session; the server says why when it cannot (e.g. no model saved).

function epochsDone(state) {
  const complete = (state.metrics || []).filter((row) => !row.partial).map((row) => row.epoch);
  return complete.length ? Math.max(...complete) : state.epochs_done || 0;
}

function renderContinue(state) {
  const actions = $("#continue-actions");
  if (!actions) return;
  const shown = data.can_edit && data.training_mode === "standard" && ["interrupted", "succeeded"].includes(state.status);
  actions.hidden = !shown;
  if (!shown) $("#continue-form").hidden = true;
}

function openContinue() {
  const form = $("#continue-form");
  const done = epochsDone(stream.state);
  form.hidden = false;
  $("#continue").setAttribute("aria-expanded", "true");
  $("#continue-epochs").min = String(done + 1);
  $("#continue-epochs").value = String(done + 10);
  $("#continue-note").textContent = `${done} done: it goes on from epoch ${done} as a new session, with the last epoch's model and optimizer state.`;
  showMessage("", "info", $("#continue-message"));
  $("#continue-epochs").focus();
}

function closeContinue() {
  $("#continue-form").hidden = true;
  $("#continue").setAttribute("aria-expanded", "false");
}

async function startContinue(event) {
  event.preventDefault();
  const message = $("#continue-message");
  const text = $("#continue-epochs").value.trim();
  if (!/^\d+$/.test(text)) {
    showMessage("Enter the number of epochs in all, a whole number.", "error", message);
    return;
  }
  await busy($("#continue-start"), async () => {
    try {
      const session = await postJSON(`${sessionApi}resume/`, { epochs: Number(text) });
      showMessage(`Session ${session.id} started; opening it…`, "ok", message);
      window.location.assign(window.location.pathname.replace(/\/sessions\/\d+\/?$/, `/sessions/${session.id}/`));
    } catch (error) {
      showMessage(error.message, "error", message);
    }
  });
}

if ($("#continue")) {
  $("#continue").addEventListener("click", () => ($("#continue-form").hidden ? openContinue() : closeContinue()));
  $("#continue-cancel").addEventListener("click", closeContinue);
  $("#continue-form").addEventListener("submit", startContinue);
}

mountReport(data);
mountScoring();
stream.start();
