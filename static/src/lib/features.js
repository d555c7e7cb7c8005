// The Features table of the ML task page: per column role, type, handling and model input name.
// The handling controls come from the server's schema (analyses/design.py handling_schema), the
// same tables the API validates against, so the page offers exactly what will be accepted.
import { el } from "./dom.js";

const ROLES = ["input", "reject"];
const LABELS = {
  missing_value: "value",
  max_levels: "max levels",
  max_features: "max features",
  ngram_max: "n-grams up to",
  vocabulary_size: "vocabulary",
  sequence_length: "length",
};
// Integer encodings feed an Embedding layer and need a model input of their own.
const INTEGER_ENCODINGS = { categorical: "index", text: "sequence" };

function select(values, value, label, disabled) {
  const node = el("select", { disabled, "aria-label": label });
  for (const option of values) {
    node.append(el("option", { value: String(option), selected: String(option) === String(value) }, String(option)));
  }
  return node;
}

// Select values are text; booleans go back to the API as booleans.
function chosenValue(spec, text) {
  const match = spec.choices.find((choice) => String(choice) === text);
  return match === undefined ? text : match;
}

// The options to show for a handling: its encoding's options, else every option of the type. A
// custom image loader is the user's function: none of the default loader's options apply.
function shownOptions(typeSchema, handling) {
  if (handling.loader === "custom") return ["loader"];
  const encoding = typeSchema.encodings[handling.encoding];
  return encoding ? encoding.options : Object.keys(typeSchema.options);
}

function featureRow(feature, schema, readOnly, onChange) {
  let handling = { ...feature.handling };
  const role = select(ROLES, feature.role, `${feature.name} role`, readOnly);
  const type = select(Object.keys(schema), feature.type, `${feature.name} type`, readOnly);
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

  function control(option, spec, typeSchema) {
    const label = `${feature.name} ${option.replaceAll("_", " ")}`;
    if (spec.choices) {
      const node = select(spec.choices, handling[option], label, readOnly);
      node.addEventListener("change", () => {
        if (option === "loader") {
          handling = node.value === "custom" ? { loader: "custom" } : { ...typeSchema.default };
        } else if (option === "encoding") {
          handling = { ...typeSchema.encodings[node.value].default }; // other options would not apply
          if (INTEGER_ENCODINGS[type.value] === node.value && input.value === "main") {
            input.value = `${feature.name.replace(/\W+/g, "_")}_ids`; // an input of its own
          }
        } else {
          handling[option] = chosenValue(spec, node.value);
          if (option === "missing" && node.value === "constant") handling.missing_value ??= 0;
          if (option === "missing" && node.value !== "constant") delete handling.missing_value;
        }
        draw();
        onChange();
      });
      return node;
    }
    if (spec.multi) {
      const box = el("span", { className: "multi", role: "group", "aria-label": label });
      for (const choice of spec.multi) {
        const check = el("input", {
          type: "checkbox",
          checked: (handling[option] || []).includes(choice),
          disabled: readOnly,
          "aria-label": `${feature.name} ${choice}`,
        });
        check.addEventListener("change", () => {
          const chosen = new Set(handling[option] || []);
          if (check.checked) chosen.add(choice);
          else chosen.delete(choice);
          handling[option] = spec.multi.filter((c) => chosen.has(c));
          onChange();
        });
        box.append(el("label", { className: "check" }, check, choice));
      }
      return box;
    }
    const node = el("input", {
      type: "number",
      step: Number.isInteger(spec.min) ? "1" : "any",
      min: spec.min > -1e100 ? String(spec.min) : "",
      max: spec.max < 1e100 ? String(spec.max) : "",
      value: handling[option] ?? "",
      placeholder: handling[option] === undefined ? "default" : "",
      disabled: readOnly,
      className: "input-narrow",
      "aria-label": label,
    });
    node.addEventListener("change", () => {
      if (node.value === "") delete handling[option];
      else handling[option] = Number(node.value);
      onChange();
    });
    return node;
  }

  function draw() {
    const typeSchema = schema[type.value];
    handlingCell.replaceChildren();
    for (const option of shownOptions(typeSchema, handling)) {
      if (option === "missing_value" && handling.missing !== "constant") continue;
      const name = LABELS[option] ?? option;
      handlingCell.append(
        el("label", { className: "handling-option" }, `${name} `, control(option, typeSchema.options[option], typeSchema)),
      );
    }
  }

  role.addEventListener("change", () => {
    row.classList.toggle("row-muted", role.value === "reject");
    onChange();
  });
  type.addEventListener("change", () => {
    handling = { ...schema[type.value].default }; // another type has other options
    draw();
    onChange();
  });
  input.addEventListener("input", onChange);
  row.classList.toggle("row-muted", feature.role === "reject");
  draw();

  const read = () => ({ ...feature, role: role.value, type: type.value, handling: { ...handling }, input: input.value.trim() });
  return { row, read };
}

export function createFeaturesEditor(tbody, { features, schema, readOnly, onChange, lastModel }) {
  let rows = [];
  const inputsSummary = document.getElementById("inputs-summary");

  function summarise() {
    if (!inputsSummary) return;
    const byInput = new Map();
    for (const feature of read()) {
      if (feature.role !== "input") continue;
      byInput.set(feature.input, (byInput.get(feature.input) || 0) + 1);
    }
    // Shapes are exact only once preprocessing was fitted: shown from the latest session's model.
    const shapes = lastModel?.input_shapes || {};
    const vocabularies = lastModel?.vocabularies || {};
    inputsSummary.replaceChildren(
      ...[...byInput].map(([name, count]) => {
        const shape = shapes[name] ? ` · shape (${shapes[name].join(", ")},)` : "";
        const vocabulary = vocabularies[name] ? ` · Embedding input_dim ${vocabularies[name]}` : "";
        return el("li", {}, el("code", {}, name), ` ← ${count} feature${count === 1 ? "" : "s"}${shape}${vocabulary}`);
      }),
    );
  }

  function changed() {
    summarise();
    onChange();
  }

  function set(list) {
    rows = list.map((feature) => featureRow(feature, schema, readOnly, changed));
    tbody.replaceChildren(...rows.map((r) => r.row));
    summarise();
  }

  function read() {
    return rows.map((r) => r.read());
  }

  set(features);
  return { get: read, set };
}
