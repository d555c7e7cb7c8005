// Dataset page: paged preview of the rows, and "New analysis" (an analysis plus its first ML task).
import { getJSON, patchJSON, postJSON } from "./lib/api.js";
import { $, busy, el, pageData, showMessage } from "./lib/dom.js";
import { distributionChart, summaryText } from "./lib/stats.js";
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
      const also = [...($("#also-predict")?.selectedOptions || [])].map((option) => option.value);
      const mltask = await createMLTask(createdAnalysis.id, target, predictionType, also.filter((c) => c !== target));
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

// "image" is offered where it can work: a dataset with an image folder and a column of text (file
// names), or a column that is an image now. The API checks that the files are there.
const hasImages = $("#schema").dataset.hasImages === "true";

function typeChoices(column) {
  const types = data.column_types.filter((type) => type !== "image");
  const canBeImage = column.type === "image" || (hasImages && column.inferred_type !== "numeric");
  return canBeImage ? [...types, "image"] : types;
}

// The schema table: type (an editor may override it), counts, a summary and a mini chart.
function renderSchema(columns) {
  const rows = columns.map((column) => {
    let typeCell = el("span", { className: `type type-${column.type}` }, column.type);
    if (data.can_edit) {
      typeCell = el("select", { "aria-label": `${column.name} type`, className: "type-select" });
      for (const type of typeChoices(column)) {
        const label = type === column.inferred_type ? `${type} (inferred)` : type;
        typeCell.append(el("option", { value: type, selected: type === column.type }, label));
      }
      typeCell.addEventListener("change", () => overrideType(column.name, typeCell));
    }
    const distinct = `${column.distinct}${column.distinct_approx ? " ≈" : ""}`;
    return el(
      "tr",
      { dataset: { column: column.name } },
      el("td", { className: "mono" }, column.name),
      el("td", {}, typeCell),
      el("td", { className: "num" }, column.missing),
      el("td", { className: "num" }, distinct),
      el("td", { className: "small" }, summaryText(column)),
      el("td", {}, distributionChart(column)),
    );
  });
  $("#schema tbody").replaceChildren(...rows);
}

async function overrideType(name, select) {
  select.disabled = true;
  try {
    const dataset = await patchJSON(`/api/datasets/${data.dataset}/`, { columns: [{ name, type: select.value }] });
    data.columns = dataset.columns;
    renderSchema(data.columns);
    showMessage(`Column ${name} is now ${select.value}.`, "ok");
  } catch (error) {
    renderSchema(data.columns); // back to the stored type
    showMessage(error.message, "error");
  } finally {
    select.disabled = false;
  }
}

if (data.columns) renderSchema(data.columns);
