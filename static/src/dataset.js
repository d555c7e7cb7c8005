// Dataset page: paged preview of the rows, and "New analysis" (an analysis plus its first ML task).
import { getJSON, postJSON } from "./lib/api.js";
import { $, busy, el, pageData, showMessage } from "./lib/dom.js";
import { createMLTask, mltaskPageUrl } from "./lib/mltasks.js";

const data = pageData();
const PAGE_SIZE = 50;
let offset = 0;
let total = data.rows || 0;

async function showPage(newOffset) {
  const range = $("#preview-range");
  range.textContent = "loading…";
  try {
    const page = await getJSON(`/api/datasets/${data.dataset}/rows/?offset=${newOffset}&limit=${PAGE_SIZE}`);
    offset = page.offset;
    total = page.total;
    renderPreview(page);
    const last = offset + page.rows.length;
    range.textContent = page.rows.length ? `rows ${offset + 1}–${last} of ${total}` : `no rows (of ${total})`;
    $("#preview-prev").disabled = offset === 0;
    $("#preview-next").disabled = last >= total || page.rows.length < PAGE_SIZE;
  } catch (error) {
    range.textContent = "";
    showMessage(error.message, "error");
  }
}

function renderPreview(page) {
  const header = el("thead", {}, el("tr", {}, el("th", { className: "num" }, "#"), page.columns.map((name) => el("th", { scope: "col" }, name))));
  const body = el(
    "tbody",
    {},
    page.rows.map((row, index) =>
      el("tr", {}, el("td", { className: "num muted" }, page.offset + index + 1), row.map((value) => el("td", {}, value)))),
  );
  $("#preview").replaceChildren(header, body);
}

// Remembered across attempts: when the ML task is refused (say, the wrong prediction type), a
// retry reuses the analysis instead of creating another one.
let createdAnalysis = null;

async function createAnalysis(event) {
  event.preventDefault();
  const target = $("#target").value;
  if (!target) {
    showMessage("Choose the target column: the column the model learns to predict.", "error");
    return;
  }
  const predictionType = $("#analysis-prediction-type").value;
  const name = $("#analysis-name").value.trim();
  showMessage("Creating the analysis…", "info");
  await busy($("#create-analysis"), async () => {
    try {
      if (!createdAnalysis || createdAnalysis.requestedName !== name) {
        const analysis = await postJSON(`/api/projects/${data.project}/analyses/`, { dataset: data.dataset, name });
        createdAnalysis = { ...analysis, requestedName: name };
      }
      const mltask = await createMLTask(createdAnalysis.id, target, predictionType);
      window.location.assign(mltaskPageUrl(data.project, mltask.id));
    } catch (error) {
      showMessage(error.message, "error");
    }
  });
}

$("#preview-prev").addEventListener("click", () => showPage(Math.max(0, offset - PAGE_SIZE)));
$("#preview-next").addEventListener("click", () => showPage(offset + PAGE_SIZE));
const form = $("#new-analysis");
if (form) form.addEventListener("submit", createAnalysis);
showPage(0);
