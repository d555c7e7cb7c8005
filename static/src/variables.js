// Variables page: the project variables as a table; owners edit them as one JSON object, checked
// here first (where the JSON is wrong) and then by the server (reserved or blank names).
import { api } from "./lib/api.js";
import { $, busy, el, pageData, showMessage } from "./lib/dom.js";

const data = pageData();

function render(variables) {
  const names = Object.keys(variables).sort();
  $("#variables tbody").replaceChildren(
    ...names.map((name) =>
      el("tr", { dataset: { name } }, el("td", { className: "mono" }, name), el("td", { className: "mono" }, JSON.stringify(variables[name]))),
    ),
  );
  $("#no-variables").hidden = names.length > 0;
  const example = names[0] || "learning_rate";
  $("#usage").textContent = `value = get_variable(${JSON.stringify(example)})`;
}

// The parsed object, or throws an Error whose message says what is wrong and where.
function parseVariables(text) {
  let value;
  try {
    value = JSON.parse(text.trim() || "{}");
  } catch (error) {
    throw new Error(`Not valid JSON: ${error.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error('The variables are one JSON object, such as {"learning_rate": 0.01, "layers": [64, 32]}.');
  }
  return value;
}

function setupEditor() {
  const form = $("#variables-form");
  if (!form) return; // owners only
  const textarea = $("#variables-json");
  const error = $("#variables-error");
  textarea.value = JSON.stringify(data.variables, null, 2);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let variables;
    try {
      variables = parseVariables(textarea.value);
    } catch (problem) {
      showMessage(problem.message, "error", error);
      textarea.setAttribute("aria-invalid", "true");
      return;
    }
    await busy($("#save-variables"), async () => {
      try {
        const saved = await api("PUT", `/api/projects/${data.project}/variables/`, variables);
        textarea.removeAttribute("aria-invalid");
        showMessage("", "info", error);
        textarea.value = JSON.stringify(saved, null, 2);
        render(saved);
        showMessage("Variables saved. Sessions started from now on read them.", "ok");
      } catch (problem) {
        showMessage(problem.message, "error", error);
        textarea.setAttribute("aria-invalid", "true");
      }
    });
  });
}

render(data.variables);
setupEditor();
