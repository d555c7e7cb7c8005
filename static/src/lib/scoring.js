// "Use this model" on the session page (templates/analyses/_scoring.html): score another dataset
// as a job (its progress polled every second), predict JSON rows, download the export bundle.
// Shown once the session has a saved model; while it trains, the section waits for one.
import { getJSON, postJSON } from "./api.js";
import { $, busy, el, formatNumber, showMessage, statusChip } from "./dom.js";

const POLL_MS = 1000;
const WAIT_FOR_MODEL_MS = 5000;
const FINAL_SESSION = ["succeeded", "interrupted", "failed", "aborted"];
const FINAL_JOB = ["succeeded", "failed"];

export function mountScoring(root = $("#use-model")) {
  if (!root) return;
  const sessionId = root.dataset.session;
  const overviewUrl = `/api/sessions/${sessionId}/scoring/`;
  const jobs = new Map(); // id -> list item, kept up to date while the job runs

  async function load() {
    let overview;
    try {
      overview = await getJSON(overviewUrl);
    } catch {
      window.setTimeout(load, WAIT_FOR_MODEL_MS); // the network came back? try again
      return;
    }
    if (!overview.available) {
      root.hidden = true;
      // Still training: a model may come; a session that ended without one never gets it.
      if (!FINAL_SESSION.includes(overview.status)) window.setTimeout(load, WAIT_FOR_MODEL_MS);
      return;
    }
    root.hidden = false;
    const rows = $("#predict-rows", root);
    if (!rows.value.trim()) rows.value = JSON.stringify([overview.example || exampleOf(overview.inputs)], null, 1);
    for (const job of overview.jobs.slice().reverse()) showJob(job);
  }

  function exampleOf(inputs) {
    return Object.fromEntries(inputs.map((input) => [input.name, null]));
  }

  // ---------------------------------------------------------------- scoring jobs

  function showJob(job) {
    let item = jobs.get(job.id);
    if (!item) {
      item = el("li", { className: "scoring-job", dataset: { job: String(job.id) } });
      jobs.set(job.id, item);
      $("#score-jobs", root).prepend(item);
    }
    item.replaceChildren(...jobLine(job));
    if (!FINAL_JOB.includes(job.status)) window.setTimeout(() => poll(job.id), POLL_MS);
  }

  function jobLine(job) {
    const parts = [statusChip(job.status), " ", job.dataset_name || `dataset ${job.dataset}`, " "];
    if (job.status === "running" || job.status === "queued") {
      parts.push(
        el("progress", { max: Math.max(job.rows_total, 1), value: job.rows_done }),
        el("span", { className: "muted small" }, ` ${job.rows_done.toLocaleString()} of ${job.rows_total.toLocaleString()} rows`),
      );
    } else if (job.status === "succeeded") {
      parts.push(
        "→ ",
        el("a", { href: job.result_url, className: "scoring-result" }, job.result_dataset_name),
        " · ",
        el("a", { href: job.download_url, download: "", className: "scoring-download" }, "CSV"),
      );
    } else if (job.error) {
      parts.push(el("span", { className: "error-message" }, job.error.message || "Scoring failed."));
    }
    return parts;
  }

  async function poll(id) {
    try {
      showJob(await getJSON(`/api/scoring/${id}/`));
    } catch {
      window.setTimeout(() => poll(id), POLL_MS * 3);
    }
  }

  const scoreForm = $("#score-form", root);
  if (scoreForm) {
    scoreForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const message = $("#score-message", root);
      showMessage("", "info", message);
      await busy($("#score-start", root), async () => {
        try {
          const job = await postJSON(`/api/sessions/${sessionId}/score/`, { dataset: Number($("#score-dataset", root).value) });
          showJob(job);
        } catch (error) {
          showMessage(error.message, "error", message);
        }
      });
    });
  }

  // ---------------------------------------------------------------- predict

  $("#predict-form", root).addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = $("#predict-message", root);
    let rows;
    try {
      rows = JSON.parse($("#predict-rows", root).value);
    } catch (error) {
      showMessage(`Not JSON: ${error.message}`, "error", message);
      return;
    }
    if (!Array.isArray(rows)) rows = [rows]; // one object is one row
    showMessage("Predicting…", "info", message);
    await busy($("#predict-start", root), async () => {
      try {
        const answer = await postJSON(`/api/sessions/${sessionId}/predict/`, { rows });
        showMessage(`${answer.predictions.length} prediction(s) in ${answer.seconds} s.`, "ok", message);
        renderPredictions(answer);
      } catch (error) {
        showMessage(error.message, "error", message);
        $("#predict-table", root).hidden = true;
      }
    });
  });

  function renderPredictions(answer) {
    const table = $("#predict-table", root);
    const classes = answer.classes || [];
    table.tHead.replaceChildren(
      el("tr", {}, el("th", { className: "num" }, "row"), el("th", {}, "prediction"),
        classes.map((label) => el("th", { className: "num" }, `P(${label})`))),
    );
    table.tBodies[0].replaceChildren(
      ...answer.predictions.map((row, index) =>
        el("tr", {}, el("td", { className: "num" }, index), el("td", {}, formatNumber(row.prediction)),
          classes.map((label) => el("td", { className: "num" }, formatNumber(row.probabilities?.[label]))))),
    );
    table.hidden = false;
  }

  load();
}
