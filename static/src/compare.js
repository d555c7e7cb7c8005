// Compare page: sessions of one ML task side by side. Overlaid learning curves (a metric picker;
// Test, Train or both), the final metrics with the best value of each row highlighted, and what
// changed between any two of them (settings, and a line-coloured unified diff per code tab).
import { getJSON } from "./lib/api.js";
import { metricBase } from "./lib/charts.js";
import { metricChoices, OverlaidCurves, SESSION_COLORS } from "./lib/compare_charts.js";
import { codeDiffBlock, settingRow } from "./lib/design_diff.js";
import { $, el, formatNumber, pageData, showMessage, statusChip } from "./lib/dom.js";
import { formatDuration } from "./lib/sessions_table.js";

const data = pageData();
const comparison = data.comparison;

function sessionLink(session) {
  return el(
    "a",
    { href: `${data.sessions_base}${session.id}/`, className: "session-swatch", style: `--swatch: ${session.color}` },
    `Session ${session.id}`,
  );
}

function showSessions(sessions) {
  $("#compared-metric").textContent = comparison.metric || "Metric";
  $("#compare-metric-note").textContent = comparison.metric
    ? ` · optimization metric ${comparison.metric} (${comparison.greater_is_better ? "higher" : "lower"} is better)`
    : "";
  $("#compared tbody").replaceChildren(
    ...sessions.map((session) =>
      el(
        "tr",
        { dataset: { sessionId: String(session.id) } },
        el("td", {}, sessionLink(session)),
        el("td", {}, statusChip(session.status)),
        el("td", {}, session.created_by || "–"),
        el("td", { className: "num" }, formatDuration(session.duration_seconds)),
        el(
          "td",
          { className: "num", title: session.kept_epoch ? `kept epoch ${session.kept_epoch}` : "" },
          `${session.epochs_done} / ${session.epochs_total || "?"}`,
          session.kept_epoch ? ` (★ ${session.kept_epoch})` : "",
        ),
        el("td", { className: "num" }, formatNumber(session.metric_value)),
      ),
    ),
  );
}

function showCurves(sessions) {
  const picker = $("#curve-metric");
  const split = $("#curve-split");
  const curves = new OverlaidCurves($("#curves"), $("#curves-empty"));
  const choices = metricChoices(sessions, metricBase(comparison.metric || ""));
  picker.replaceChildren(...choices.map((base) => el("option", { value: base }, base)));
  const draw = () => curves.show(sessions, picker.value, split.value);
  picker.addEventListener("change", draw);
  split.addEventListener("change", draw);
  draw();
}

function showFinalMetrics(sessions) {
  const rows = comparison.final_metrics;
  $("#final-empty").hidden = rows.length > 0;
  $("#final-metrics").hidden = rows.length === 0;
  $("#final-metrics thead").replaceChildren(
    el("tr", {}, el("th", {}, "Metric"), el("th", {}, "Better"), ...sessions.map((s) => el("th", { className: "num" }, sessionLink(s)))),
  );
  $("#final-metrics tbody").replaceChildren(
    ...rows.map((row) =>
      el(
        "tr",
        { dataset: { metric: row.name }, className: row.name === comparison.metric ? "row-optimized" : "" },
        el("th", { scope: "row" }, row.name),
        el("td", { className: "muted small" }, row.greater_is_better ? "higher" : "lower"),
        ...sessions.map((session) => {
          const best = row.best.includes(session.id) && row.best.length < sessions.length;
          return el(
            "td",
            { className: `num${best ? " best" : ""}`, title: best ? "best of these sessions" : "" },
            formatNumber(row.values[String(session.id)]),
          );
        }),
      ),
    ),
  );
}

// ---------------------------------------------------------------- diff

function showDiff(answer) {
  const { a, b, settings, code } = answer;
  const changedCode = code.filter((item) => item.changed);
  $("#diff-summary").textContent = answer.same
    ? `Sessions ${a.id} and ${b.id} trained the same code and settings.`
    : `${settings.length} setting${settings.length === 1 ? "" : "s"} and ${changedCode.length} code tab${changedCode.length === 1 ? "" : "s"} changed from session ${a.id} to session ${b.id}.`;
  $("#settings-diff-block").hidden = settings.length === 0;
  $("#settings-diff-a").textContent = `Session ${a.id}`;
  $("#settings-diff-b").textContent = `Session ${b.id}`;
  $("#settings-diff tbody").replaceChildren(...settings.map(settingRow));
  $("#code-diffs").replaceChildren(
    ...code.map((item) =>
      item.changed
        ? codeDiffBlock(item)
        : el("p", { className: "muted small", dataset: { code: item.name } }, `${item.label} code: no change.`),
    ),
  );
}

function setUpDiff(sessions) {
  const [first, second] = [$("#diff-a"), $("#diff-b")];
  for (const select of [first, second]) {
    select.replaceChildren(...sessions.map((s) => el("option", { value: String(s.id) }, `Session ${s.id}`)));
  }
  first.value = String(sessions[0].id);
  second.value = String(sessions[1].id);
  let asked = 0; // only the latest answer is shown when the selects change quickly
  const load = async () => {
    const ticket = ++asked;
    showMessage("", "info", $("#diff-message"));
    try {
      const answer = await getJSON(`/api/sessions/${first.value}/diff/${second.value}/`);
      if (ticket === asked) showDiff(answer);
    } catch (error) {
      if (ticket === asked) showMessage(error.message, "error", $("#diff-message"));
    }
  };
  first.addEventListener("change", load);
  second.addEventListener("change", load);
  load();
}

if (comparison) {
  const sessions = comparison.sessions.map((session, index) => ({ ...session, color: SESSION_COLORS[index % SESSION_COLORS.length] }));
  showSessions(sessions);
  showCurves(sessions);
  showFinalMetrics(sessions);
  setUpDiff(sessions);
}
