// The Features table of the ML task page: per column role, type, handling and model input name.
// Renders from the design's `features` list and reads back a list of the same shape.
import { el } from "./dom.js";

const ROLES = ["input", "reject"];
const TYPES = ["numeric", "categorical", "text"];
// Choices per handling option; numbers are edited in number inputs.
const CHOICES = {
  rescaling: ["standard", "minmax", "none"],
  missing: ["mean", "median", "constant"],
};
const NUMBERS = {
  missing_value: { label: "value", step: "any" },
  max_levels: { label: "max levels", step: "1", min: "1" },
  max_features: { label: "max features", step: "1", min: "1" },
};

function select(values, value, label, disabled) {
  const node = el("select", { disabled, "aria-label": label });
  for (const option of values) node.append(el("option", { value: option, selected: option === value }, option));
  return node;
}

function numberInput(option, value, label, disabled) {
  const spec = NUMBERS[option];
  return el("input", {
    type: "number",
    step: spec.step,
    min: spec.min ?? "",
    value: value ?? "",
    disabled,
    className: "input-narrow",
    "aria-label": label,
  });
}

// One row's controls; `read()` gives the feature back with what the user chose.
function featureRow(feature, defaults, readOnly, onChange) {
  let handling = { ...feature.handling };
  const role = select(ROLES, feature.role, `${feature.name} role`, readOnly);
  const type = select(TYPES, feature.type, `${feature.name} type`, readOnly);
  const input = el("input", {
    type: "text",
    value: feature.input || "main",
    disabled: readOnly,
    className: "input-narrow mono",
    "aria-label": `${feature.name} input name`,
  });
  const handlingCell = el("td", { className: "handling small" });
  const row = el(
    "tr",
    { dataset: { feature: feature.name } },
    el("td", { className: "mono" }, feature.name),
    el("td", {}, role),
    el("td", {}, type),
    handlingCell,
    el("td", {}, input),
  );

  function drawHandling() {
    handlingCell.replaceChildren();
    for (const [option, value] of Object.entries(handling)) {
      if (option === "encoding") {
        handlingCell.append(el("span", { className: "muted" }, `${value} `));
        continue;
      }
      if (option === "missing_value" && handling.missing !== "constant") continue;
      const label = `${feature.name} ${option.replace("_", " ")}`;
      const control = CHOICES[option]
        ? select(CHOICES[option], value, label, readOnly)
        : numberInput(option, value, label, readOnly);
      control.addEventListener("change", () => {
        handling[option] = CHOICES[option] ? control.value : Number(control.value);
        if (option === "missing") {
          if (control.value === "constant" && handling.missing_value === undefined) handling.missing_value = 0;
          drawHandling();
        }
        onChange();
      });
      const name = NUMBERS[option]?.label ?? option;
      handlingCell.append(el("label", { className: "handling-option" }, `${name} `, control));
    }
  }

  role.addEventListener("change", () => {
    row.classList.toggle("row-muted", role.value === "reject");
    onChange();
  });
  type.addEventListener("change", () => {
    handling = { ...defaults[type.value] }; // another type has other options
    drawHandling();
    onChange();
  });
  input.addEventListener("input", onChange);
  row.classList.toggle("row-muted", feature.role === "reject");
  drawHandling();

  const read = () => {
    const chosen = { ...handling };
    if (chosen.missing !== "constant") delete chosen.missing_value;
    return { ...feature, role: role.value, type: type.value, handling: chosen, input: input.value.trim() };
  };
  return { row, read };
}

export function createFeaturesEditor(tbody, { features, defaults, readOnly, onChange }) {
  let rows = [];
  const inputsSummary = document.getElementById("inputs-summary");

  function summarise() {
    if (!inputsSummary) return;
    const byInput = new Map();
    for (const feature of read()) {
      if (feature.role !== "input") continue;
      byInput.set(feature.input, (byInput.get(feature.input) || 0) + 1);
    }
    inputsSummary.replaceChildren(
      ...[...byInput].map(([name, count]) =>
        el("li", {}, el("code", {}, name), ` ← ${count} feature${count === 1 ? "" : "s"}`),
      ),
    );
  }

  function changed() {
    summarise();
    onChange();
  }

  function set(list) {
    rows = list.map((feature) => featureRow(feature, defaults, readOnly, changed));
    tbody.replaceChildren(...rows.map((r) => r.row));
    summarise();
  }

  function read() {
    return rows.map((r) => r.read());
  }

  set(features);
  return { get: read, set };
}
