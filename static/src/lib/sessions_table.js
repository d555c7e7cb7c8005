// The ML task page's sessions table (GET /api/mltasks/{id}/sessions/table/): status, who started
// it, when, duration, epochs, the optimization metric and the other final metrics. A click on a
// header sorts by it (the server sorts: sessions without a value stay last); checkboxes select
// 2 to 8 sessions for the compare page; editors delete a finished session (after a confirm).
// While a session may still change (queued, starting, running) the table refreshes itself.
import { api, getJSON } from "./api.js";
import { el, formatNumber, showMessage, statusChip } from "./dom.js";
import { timeAgo } from "./mltasks.js";

const ACTIVE = new Set(["queued", "starting", "running"]);
const MAX_COMPARED = 8;
const REFRESH_MS = 5000;

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const total = Math.round(seconds);
  if (total < 60) return `${total} s`;
  if (total < 3600) return `${Math.floor(total / 60)} min ${total % 60} s`;
  return `${Math.floor(total / 3600)} h ${Math.floor((total % 3600) / 60)} min`;
}

// Columns before the metrics: [sort key, header, first-click direction ("-" descending)].
const BASE_COLUMNS = [
  ["id", "Session", "-"],
  ["status", "Status", ""],
  ["created_by", "Started by", ""],
  ["queued_at", "Queued", "-"],
  ["duration", "Duration", "-"],
  ["epochs", "Epochs", "-"],
];

export function createSessionsTable(section, data) {
  const table = section.querySelector("#sessions");
  const empty = section.querySelector("#sessions-empty");
  const message = section.querySelector("#sessions-message");
  const compareButton = section.querySelector("#compare-selected");
  const selectedNote = section.querySelector("#sessions-selected");
  const url = `/api/mltasks/${data.mltask.id}/sessions/table/`;
  const selected = []; // ids, in the order they were ticked (the compare page keeps it)
  let sort = "-id";
  let latest = null;
  let timer = null;
  let asked = 0;

  function header(key, label, firstDirection, extraClass = "", note = "") {
    const current = sort.replace(/^-/, "") === key;
    const descending = sort.startsWith("-");
    const button = el(
      "button",
      { type: "button", className: "sort-button", dataset: { sort: key }, title: `Sort by ${label}${note}` },
      label,
      current ? (descending ? " ▼" : " ▲") : "",
    );
    button.addEventListener("click", () => {
      sort = current ? (descending ? key : `-${key}`) : `${firstDirection}${key}`;
      load();
    });
    return el("th", { className: extraClass, "aria-sort": current ? (descending ? "descending" : "ascending") : "none" }, button);
  }

  function row(session, answer, best) {
    const link = el("a", { href: `${data.sessions_base}${session.id}/` }, `Session ${session.id}`);
    const box = el("input", { type: "checkbox", className: "session-select", checked: selected.includes(session.id), "aria-label": `Select session ${session.id}` });
    box.addEventListener("change", () => toggle(session.id, box.checked));
    const metricCells = answer.columns.map((name) => {
      const value = session.final_metrics?.[name];
      const isBest = best.get(name) !== undefined && value === best.get(name);
      return el("td", { className: `num${isBest ? " best" : ""}`, dataset: { metric: name } }, formatNumber(value));
    });
    const version = session.design_version
      ? el("span", { className: "muted small", title: `design version ${session.design_version}` }, ` v${session.design_version}`)
      : "";
    const cells = [
      el("td", {}, box),
      el("td", {}, link, version),
      el("td", { title: session.error || "" }, statusChip(session.status)),
      el("td", {}, session.created_by || "–"),
      el("td", { title: session.queued_at || "" }, timeAgo(session.queued_at)),
      el("td", { className: "num" }, formatDuration(session.duration_seconds)),
      el(
        "td",
        { className: "num", title: session.kept_epoch ? `the model kept epoch ${session.kept_epoch}` : "" },
        `${session.epochs_done} / ${session.epochs_total || "?"}`,
        session.kept_epoch ? ` ★${session.kept_epoch}` : "",
      ),
      ...metricCells,
    ];
    if (data.can_edit) {
      const active = ACTIVE.has(session.status);
      const remove = el(
        "button",
        {
          type: "button",
          className: "button-link delete-session",
          disabled: active,
          title: active ? "Interrupt or abort it first; a running session cannot be deleted." : "Delete this session and its files",
        },
        "Delete",
      );
      remove.addEventListener("click", () => removeSession(session.id));
      cells.push(el("td", {}, remove));
    }
    return el("tr", { dataset: { sessionId: String(session.id), status: session.status } }, ...cells);
  }

  // The best value of each metric column, by its direction; a column where all agree has none.
  function bestValues(answer) {
    const best = new Map();
    for (const name of answer.columns) {
      const values = answer.sessions.map((s) => s.final_metrics?.[name]).filter((v) => typeof v === "number");
      if (new Set(values).size < 2) continue;
      best.set(name, answer.higher_is_better[name] ? Math.max(...values) : Math.min(...values));
    }
    return best;
  }

  function render(answer) {
    latest = answer;
    const count = answer.sessions.length;
    section.querySelector("#session-count").textContent = String(count);
    section.querySelector("#session-noun").textContent = count === 1 ? "session" : "sessions";
    empty.hidden = count > 0;
    table.hidden = count === 0;
    const known = new Set(answer.sessions.map((s) => s.id));
    for (let i = selected.length - 1; i >= 0; i -= 1) if (!known.has(selected[i])) selected.splice(i, 1);
    const heads = [el("th", {}, el("span", { className: "visually-hidden" }, "Select"))];
    for (const [key, label, first] of BASE_COLUMNS) heads.push(header(key, label, first));
    for (const name of answer.columns) {
      const optimized = name === answer.metric;
      const direction = answer.higher_is_better[name] ? "-" : ""; // best first on a first click
      const note = optimized ? " (the optimization metric)" : "";
      heads.push(header(optimized ? "metric" : name, name, direction, optimized ? "num optimized" : "num", note));
    }
    if (data.can_edit) heads.push(el("th", {}, ""));
    table.querySelector("thead").replaceChildren(el("tr", {}, ...heads));
    const best = bestValues(answer);
    table.querySelector("tbody").replaceChildren(...answer.sessions.map((session) => row(session, answer, best)));
    showSelection();
    scheduleRefresh(answer);
  }

  function toggle(id, on) {
    const index = selected.indexOf(id);
    if (on && index < 0) selected.push(id);
    if (!on && index >= 0) selected.splice(index, 1);
    showSelection();
  }

  function showSelection() {
    const n = selected.length;
    compareButton.disabled = n < 2 || n > MAX_COMPARED;
    compareButton.textContent = n ? `Compare selected (${n})` : "Compare selected";
    selectedNote.textContent = n > MAX_COMPARED ? `Select at most ${MAX_COMPARED}.` : n === 1 ? "Select one more to compare." : "";
  }

  async function load() {
    const ticket = ++asked; // a slow answer never overwrites a newer one
    try {
      const answer = await getJSON(`${url}?sort=${encodeURIComponent(sort)}`);
      if (ticket === asked) render(answer);
    } catch (error) {
      if (ticket === asked) showMessage(error.message, "error", message);
    }
  }

  function scheduleRefresh(answer) {
    clearTimeout(timer);
    if (answer.sessions.some((s) => ACTIVE.has(s.status))) {
      timer = setTimeout(() => (document.hidden ? scheduleRefresh(latest) : load()), REFRESH_MS);
    }
  }

  async function removeSession(id) {
    const ok = window.confirm(`Delete session ${id} with its model, predictions, epochs and logs? This cannot be undone.`);
    if (!ok) return;
    try {
      await api("DELETE", `/api/sessions/${id}/`);
      toggle(id, false);
      showMessage(`Session ${id} deleted.`, "ok", message);
    } catch (error) {
      showMessage(error.message, "error", message);
    }
    await load();
  }

  compareButton.addEventListener("click", () => {
    if (selected.length >= 2 && selected.length <= MAX_COMPARED) {
      window.location.assign(`${section.dataset.compareUrl}?sessions=${selected.join(",")}`);
    }
  });
  load();
  return { reload: load };
}
