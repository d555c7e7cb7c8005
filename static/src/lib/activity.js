// The project page's activity feed (templates/analyses/_activity.html): the latest entries, an
// "Older" button that pages back by id, and a refresh every 15 s while the page is visible (new
// entries are put on top; nothing is polled while the tab is hidden).
import { getJSON } from "./api.js";
import { $, el, showMessage } from "./dom.js";

const PAGE = 30;
const REFRESH_MS = 15_000;

// "just now", "3 min ago", "2 h ago", "yesterday", "4 days ago", then the date.
export function timeAgo(iso, now = Date.now()) {
  const seconds = Math.max(0, (now - new Date(iso).getTime()) / 1000);
  if (seconds < 45) return "just now";
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  const days = Math.round(hours / 24);
  if (days === 1) return "yesterday";
  if (days < 7) return `${days} days ago`;
  return new Date(iso).toLocaleDateString();
}

// One entry: "alice trained ML task target (binary) · session 12 · 3 min ago", the object linked.
function entryItem(entry) {
  const actor = entry.actor
    ? el("strong", { className: "activity-actor" }, entry.actor)
    : el("strong", { className: "activity-actor activity-platform", title: "The platform" }, "DL Studio");
  const label = entry.object.label || "";
  const target = entry.object.url
    ? el("a", { href: entry.object.url, className: "activity-object" }, label)
    : el("span", { className: "activity-object" }, label);
  const when = el(
    "time",
    { dateTime: entry.created_at, title: new Date(entry.created_at).toLocaleString() },
    timeAgo(entry.created_at),
  );
  return el(
    "li",
    { dataset: { activityId: String(entry.id), verb: entry.verb } },
    actor,
    ` ${entry.action} `,
    label ? target : null,
    entry.note ? el("span", { className: "activity-note muted" }, ` · ${entry.note}`) : null,
    el("span", { className: "muted" }, " · "),
    when,
  );
}

export function setupActivity(projectId) {
  const list = $("#activity");
  if (!list) return;
  const older = $("#activity-older");
  const empty = $("#activity-empty");
  const message = $("#activity-message");
  const url = (params) => `/api/projects/${projectId}/activity/?${new URLSearchParams(params)}`;
  let nextBefore = null; // where the "Older" page starts
  let loading = false;

  const newestId = () => Number(list.firstElementChild?.dataset.activityId || 0);
  const showState = () => {
    empty.hidden = list.childElementCount > 0;
    older.hidden = nextBefore === null;
    list.setAttribute("aria-busy", "false");
  };

  async function refresh() {
    if (loading) return;
    loading = true;
    try {
      const page = await getJSON(url({ limit: PAGE }));
      const top = newestId();
      const fresh = page.entries.filter((entry) => entry.id > top);
      if (!top || (fresh.length === page.entries.length && page.next_before !== null)) {
        // First load, or more happened than one page holds: start again from the newest.
        list.replaceChildren(...page.entries.map(entryItem));
        nextBefore = page.next_before;
      } else {
        list.prepend(...fresh.map(entryItem));
      }
      for (const time of list.querySelectorAll("time")) time.textContent = timeAgo(time.dateTime);
      showMessage("", "info", message);
      showState();
    } catch (error) {
      showMessage(`The activity could not be refreshed: ${error.message}`, "error", message);
    } finally {
      loading = false;
    }
  }

  older.addEventListener("click", async () => {
    if (loading || nextBefore === null) return;
    loading = true;
    older.disabled = true;
    try {
      const page = await getJSON(url({ limit: PAGE, before: nextBefore }));
      list.append(...page.entries.map(entryItem));
      nextBefore = page.next_before;
      showState();
    } catch (error) {
      showMessage(error.message, "error", message);
    } finally {
      loading = false;
      older.disabled = false;
    }
  });

  setInterval(() => {
    if (document.visibilityState === "visible") refresh();
  }, REFRESH_MS);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
  });
  refresh();
}
