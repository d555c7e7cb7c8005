// ML task helpers: creating one (dataset and analysis pages) and editing its targets (ML task page).
import { postJSON } from "./api.js";
import { el } from "./dom.js";

// `alsoPredict`: more target columns for a multi-output model (their types are guessed).
export function createMLTask(analysisId, target, predictionType, alsoPredict = []) {
  const first = { name: target };
  if (predictionType) first.prediction_type = predictionType; // empty: the server guesses
  const body = alsoPredict.length
    ? { targets: [first, ...alsoPredict.map((name) => ({ name }))] }
    : { target, ...(predictionType ? { prediction_type: predictionType } : {}) };
  return postJSON(`/api/analyses/${analysisId}/mltasks/`, body);
}

export function mltaskPageUrl(projectId, mltaskId) {
  return `/projects/${projectId}/mltasks/${mltaskId}/`;
}

const PREDICTION_TYPES = ["regression", "binary", "multiclass"];

// Payload form of a target: a target added on the page has no type until the server guesses it.
function spec({ name, prediction_type: type }) {
  return type ? { name, prediction_type: type } : { name };
}

// The targets table of the ML task page: one row per target with its prediction type and classes;
// editors change a type, remove a target (never the last one) and add one. `onChange(kind, name)`
// says what happened: "type", "added" or "removed".
export function createTargetsEditor(tbody, { targets, readOnly, onChange }) {
  let rows = [];
  let savedTypes = new Map(); // what the server holds, to say when classes are out of date

  function classesText(row) {
    if (savedTypes.get(row.name) !== row.prediction_type) return "computed when saved";
    return row.classes ? row.classes.join(", ") : "–";
  }

  function typeSelect(row) {
    const node = el("select", { disabled: readOnly, "aria-label": `${row.name} prediction type` });
    const choices = row.prediction_type ? PREDICTION_TYPES : ["", ...PREDICTION_TYPES];
    for (const type of choices) {
      node.append(el("option", { value: type, selected: type === row.prediction_type }, type || "guess from its values"));
    }
    node.addEventListener("change", () => {
      row.prediction_type = node.value;
      draw();
      onChange("type", row.name);
    });
    return node;
  }

  function removeButton(row) {
    const last = rows.length === 1;
    const button = el(
      "button",
      {
        type: "button",
        className: "button-secondary",
        disabled: last,
        title: last ? "An ML task needs at least one target; add another before removing this one." : "",
        "aria-label": `Remove target ${row.name}`,
      },
      "Remove",
    );
    button.addEventListener("click", () => remove(row.name));
    return button;
  }

  function draw() {
    // The first target is the one a classification split is stratified on.
    const first = el("span", { className: "muted small", title: "A stratified split keeps this target's classes." }, " (first)");
    tbody.replaceChildren(
      ...rows.map((row, index) =>
        el(
          "tr",
          { dataset: { target: row.name } },
          el("td", { className: "mono" }, row.name, index === 0 && rows.length > 1 ? first : null),
          el("td", {}, typeSelect(row)),
          el("td", { className: "small" }, classesText(row)),
          readOnly ? null : el("td", {}, removeButton(row)),
        ),
      ),
    );
  }

  function set(list) {
    rows = list.map((target) => ({ ...target }));
    savedTypes = new Map(list.map((target) => [target.name, target.prediction_type]));
    draw();
  }

  function add(name) {
    if (!name || rows.some((row) => row.name === name)) return;
    rows.push({ name, prediction_type: "", classes: null });
    draw();
    onChange("added", name);
  }

  function remove(name) {
    if (rows.length === 1) return;
    rows = rows.filter((row) => row.name !== name);
    draw();
    onChange("removed", name);
  }

  set(targets);
  return { get: () => rows.map(spec), names: () => rows.map((row) => row.name), set, add };
}

// The feature a column becomes when it stops being a target, as the server's defaults make it
// (analyses/design.py default_features): its type's default handling, into "main", or into an
// input of its own for an image.
export function defaultFeature(name, columnType, schema) {
  const type = schema[columnType] ? columnType : "categorical";
  const input = type === "image" ? imageInputName(name) : "main";
  return { name, role: "input", type, handling: { ...schema[type].default }, input };
}

function imageInputName(feature) {
  const name = feature.replace(/\W+/g, "_").replace(/^_+|_+$/g, "") || "image";
  return /^[A-Za-z_]/.test(name) ? name : `image_${name}`;
}

// `features` with `feature` inserted before the first one that comes later in `columnOrder`.
export function insertInColumnOrder(features, feature, columnOrder) {
  const position = (name) => columnOrder.indexOf(name);
  const index = features.findIndex((other) => position(other.name) > position(feature.name));
  return index === -1 ? [...features, feature] : [...features.slice(0, index), feature, ...features.slice(index)];
}
