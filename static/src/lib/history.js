// The ML task page's revision history and teammates' saves (GET /api/mltasks/{id}/revisions/…).
// - createHistory: the History section: every revision (who, when, message, what changed), tick
//   two to diff them, Restore (editors, after a confirm) makes a new revision of an old design.
// - watchTeammates: every ~10 s while the page is visible (and when it comes back into view) a
//   cheap check of the ML task's version; a teammate's save shows "<user> saved version N at
//   HH:MM" with Reload and Compare, and the form keeps the user's edits until they choose.
// - showConflict: what a refused (409) save carries: who saved since and the diff to the base.
import { ApiError, getJSON, postJSON } from "./api.js";
import { codeDiffBlock, settingRow } from "./design_diff.js";
import { $, el, showMessage } from "./dom.js";

const PAGE_SIZE = 50;
const WATCH_MS = 10_000;

// Saves in flight: a check answering meanwhile would take the page's own save for a teammate's.
let inFlight = 0;

export async function tracked(promise) {
  inFlight += 1;
  try {
    return await promise;
  } finally {
    inFlight -= 1;
  }
}

const pad = (n) => String(n).padStart(2, "0");

export function clock(iso) {
  const date = new Date(iso);
  return `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function when(iso) {
  const date = new Date(iso);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${clock(iso)}`;
}

// ---------------------------------------------------------------- a diff, line-coloured

// `answer`: {code: [{name, label, changed, diff}], settings: [{path, before, after, change}], same}.
export function diffNodes(answer, beforeLabel, afterLabel) {
  if (answer.same) return [el("p", { className: "muted small" }, "Same code and settings.")];
  const nodes = [];
  if (answer.settings.length) {
    nodes.push(
      el(
        "table",
        { className: "table table-compact settings-diff" },
        el("thead", {}, el("tr", {}, el("th", {}, "Setting"), el("th", {}, beforeLabel), el("th", {}, afterLabel))),
        el("tbody", {}, ...answer.settings.map(settingRow)),
      ),
    );
  }
  for (const item of answer.code.filter((code) => code.changed)) nodes.push(codeDiffBlock(item));
  return nodes;
}

function savedBy(revision) {
  return `${revision.author || "someone"} saved version ${revision.number} at ${clock(revision.created_at)}`;
}

// ---------------------------------------------------------------- a refused save (409)

// `body`: the 409 answer ({error, current, conflict: {base, latest, since, diff}}).
export function showConflict(body) {
  const who = $("#conflict-who");
  const box = $("#conflict-diff");
  if (!who || !box) return;
  const conflict = body?.conflict;
  const note = $("#teammate-saved");
  if (note) note.hidden = true; // the banner says it, with the diff
  if (!conflict) {
    who.textContent = "";
    box.replaceChildren();
    return;
  }
  who.textContent = `${conflict.since.map(savedBy).join("; ")}${conflict.since.length ? "." : ""} What changed since your version ${conflict.base}:`;
  box.replaceChildren(
    ...(conflict.diff
      ? diffNodes(conflict.diff, `version ${conflict.base} (yours)`, `version ${conflict.latest} (theirs)`)
      : [el("p", { className: "muted small" }, "Your version is older than the history; open History to compare.")]),
  );
}

// ---------------------------------------------------------------- teammates' saves

// `getVersion()`: the version the form is based on; `load(mltask)`: put a design into the form.
export function watchTeammates({ mltaskId, getVersion, isDirty, load, onNewVersion = () => {} }) {
  const box = $("#teammate-saved");
  if (!box) return { check() {} };
  const text = $("#teammate-saved-text");
  const diff = $("#teammate-diff");
  const url = `/api/mltasks/${mltaskId}/revisions/`;
  let latest = null; // the newest revision a check saw
  let seenVersion = null;

  function hide() {
    box.hidden = true;
    diff.replaceChildren();
    diff.hidden = true;
  }

  async function check() {
    if (document.visibilityState !== "visible" || inFlight) return;
    let answer;
    try {
      answer = await getJSON(`${url}?limit=1`);
    } catch {
      return; // offline for a moment: the next check tells
    }
    if (inFlight) return;
    if (answer.version !== seenVersion) {
      seenVersion = answer.version;
      onNewVersion(answer.version);
    }
    // A refused save's banner already says who saved and what changed.
    const conflictShown = $("#conflict") && !$("#conflict").hidden;
    if (answer.version <= getVersion() || conflictShown) {
      hide();
      return;
    }
    const fresh = !latest || latest.number !== answer.revisions[0]?.number;
    latest = answer.revisions[0] || { number: answer.version, author: answer.updated_by, created_at: answer.updated_at };
    if (fresh || box.hidden) {
      text.textContent = `${savedBy(latest)}${latest.message ? ` — “${latest.message}”` : ""}. ${
        isDirty() ? "Your unsaved edits are still here." : "This page shows an older version."
      }`;
      diff.hidden = true;
      box.hidden = false;
    }
  }

  async function reload() {
    if (isDirty() && !window.confirm(`Load version ${latest.number}? Your unsaved edits will be discarded.`)) return;
    try {
      load(await getJSON(`/api/mltasks/${mltaskId}/`));
      hide();
      showMessage(`Loaded version ${getVersion()}.`, "info");
    } catch (error) {
      showMessage(error.message, "error");
    }
  }

  async function compare() {
    const base = getVersion();
    try {
      const answer = await getJSON(`${url}${base}/diff/${latest.number}/`);
      diff.replaceChildren(...diffNodes(answer, `version ${base} (this page)`, `version ${latest.number}`));
    } catch (error) {
      diff.replaceChildren(el("p", { className: "muted small" }, error.message));
    }
    diff.hidden = false;
  }

  $("#teammate-reload").addEventListener("click", reload);
  $("#teammate-compare").addEventListener("click", compare);
  window.setInterval(check, WATCH_MS);
  document.addEventListener("visibilitychange", check); // back in view: check at once
  window.addEventListener("focus", check);
  // Keep mine / take theirs adopt the latest version: the note has nothing left to say.
  for (const button of [$("#keep-mine"), $("#take-theirs")]) button?.addEventListener("click", () => check());
  return { check };
}

// ---------------------------------------------------------------- the History section

export function createHistory(section, { mltaskId, canEdit, getVersion, isDirty, onRestored }) {
  if (!section) return { refresh() {} };
  const body = section.querySelector("#history-table tbody");
  const more = section.querySelector("#history-more");
  const compareButton = section.querySelector("#history-compare");
  const note = section.querySelector("#history-selected");
  const message = section.querySelector("#history-message");
  const diffBox = section.querySelector("#history-diff");
  const url = `/api/mltasks/${mltaskId}/revisions/`;
  let revisions = [];
  let total = 0;
  let latest = 0; // the ML task's version as the server last said
  let selected = []; // revision numbers, in the order they were ticked

  function showSelection() {
    note.textContent = selected.length ? `Selected: ${selected.map((n) => `revision ${n}`).join(", ")}` : "";
    compareButton.disabled = selected.length !== 2;
    for (const box of body.querySelectorAll("input[type=checkbox]")) {
      box.checked = selected.includes(Number(box.value));
      box.disabled = !box.checked && selected.length >= 2;
    }
  }

  function toggle(number, on) {
    selected = selected.filter((n) => n !== number);
    if (on) selected.push(number);
    showSelection();
  }

  function row(revision) {
    const current = revision.number === latest;
    const tick = el("input", { type: "checkbox", value: String(revision.number), "aria-label": `Select revision ${revision.number}` });
    tick.addEventListener("change", () => toggle(revision.number, tick.checked));
    const cells = [
      el("td", {}, tick),
      el("td", {}, `${revision.number}`, current ? el("span", { className: "chip chip-current" }, "current") : null),
      el("td", {}, revision.author || "–"),
      el("td", { className: "nowrap", title: revision.created_at }, when(revision.created_at)),
      el("td", { className: "history-message-cell" }, revision.message || ""),
      el("td", { className: "small muted history-summary" }, revision.summary || ""),
    ];
    if (canEdit) {
      const button = el("button", { type: "button", className: "button-link", dataset: { restore: String(revision.number) } }, "Restore");
      button.addEventListener("click", () => restore(revision.number));
      cells.push(el("td", {}, current ? "" : button));
    }
    return el("tr", { dataset: { revision: String(revision.number) } }, ...cells);
  }

  function render() {
    body.replaceChildren(...revisions.map(row));
    more.hidden = revisions.length >= total;
    selected = selected.filter((n) => revisions.some((r) => r.number === n));
    showSelection();
  }

  async function refresh() {
    try {
      const answer = await getJSON(`${url}?limit=${Math.max(PAGE_SIZE, revisions.length)}`);
      revisions = answer.revisions;
      total = answer.total;
      latest = answer.version;
      render();
    } catch (error) {
      showMessage(error.message, "error", message);
    }
  }

  async function older() {
    try {
      const answer = await getJSON(`${url}?limit=${PAGE_SIZE}&offset=${revisions.length}`);
      revisions = [...revisions, ...answer.revisions];
      total = answer.total;
      render();
    } catch (error) {
      showMessage(error.message, "error", message);
    }
  }

  async function compare(a = null, b = null) {
    const [first, second] = a !== null ? [a, b] : [...selected].sort((x, y) => x - y);
    showMessage("", "info", message);
    try {
      const answer = await getJSON(`${url}${first}/diff/${second}/`);
      const heading = el("h3", { className: "subsection" }, `Revision ${first} → revision ${second}`);
      diffBox.replaceChildren(heading, ...diffNodes(answer, `revision ${first}`, `revision ${second}`));
      diffBox.hidden = false;
    } catch (error) {
      showMessage(error.message, "error", message);
    }
  }

  async function restore(number) {
    const version = getVersion();
    const lost = isDirty() ? " Your unsaved edits will be discarded." : "";
    const question = `Restore revision ${number}? Its design becomes the current one as a new revision; no revision is deleted.${lost}`;
    if (!window.confirm(question)) return;
    showMessage("", "info", message);
    try {
      const mltask = await tracked(postJSON(`${url}${number}/restore/`, { version }));
      onRestored(mltask);
      showMessage(`Restored revision ${number} as revision ${mltask.revision.number}.`, "ok", message);
      await refresh();
    } catch (error) {
      const stale = error instanceof ApiError && error.status === 409;
      showMessage(error.message, "error", message);
      if (stale) await refresh();
    }
  }

  compareButton.addEventListener("click", () => compare());
  more.addEventListener("click", older);

  // A session's page links here with ?revision=N#history: that revision against the current one.
  const asked = Number(new URLSearchParams(window.location.search).get("revision"));
  refresh().then(() => {
    if (!asked || !revisions.some((r) => r.number === asked)) return;
    const current = latest;
    selected = asked === current ? [asked] : [asked, current];
    showSelection();
    if (asked !== current) compare(asked, current);
    section.scrollIntoView({ block: "start" });
  });
  return { refresh };
}
