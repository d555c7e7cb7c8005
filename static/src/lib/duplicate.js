// The "Duplicate" dialog of the analysis and ML task pages: where the copy goes (a project where
// the user is editor; for an ML task, one of its analyses), an analysis' new name, then the copy's
// page. The server copies datasets into another project as needed and says what is missing.
import { getJSON, postJSON } from "./api.js";
import { busy, el, showMessage } from "./dom.js";

const EDITING = new Set(["editor", "owner"]);

// kind: "analysis" | "mltask"; id: the object's; project, analysis: where it is now.
export function setupDuplicate(button, { kind, id, project, analysis = null }) {
  if (!button) return;
  let dialog = null;
  button.addEventListener("click", async () => {
    dialog ??= buildDialog(kind, id, project, analysis, button.dataset.name || "");
    document.body.append(dialog.element);
    dialog.element.showModal();
    await dialog.load();
  });
}

function buildDialog(kind, id, project, analysis, name) {
  const projectSelect = el("select", { id: "duplicate-project", required: true });
  const analysisSelect = el("select", { id: "duplicate-analysis", required: true });
  const nameInput = el("input", { type: "text", id: "duplicate-name", maxLength: 200, autocomplete: "off" });
  const message = el("p", { className: "message", id: "duplicate-message", hidden: true });
  const submit = el("button", { type: "submit", className: "button-primary", id: "duplicate-submit" }, "Duplicate");
  const cancel = el("button", { type: "button", className: "button-secondary", id: "duplicate-cancel" }, "Cancel");
  const isAnalysis = kind === "analysis";
  const fields = isAnalysis
    ? [el("label", { htmlFor: "duplicate-name" }, "Name"), nameInput]
    : [
        el("label", { htmlFor: "duplicate-analysis" }, "Into the analysis"),
        analysisSelect,
        el("p", { className: "hint small" }, "The saved design is copied (not unsaved edits, not sessions)."),
      ];
  const form = el(
    "form",
    { className: "stacked-form", method: "dialog" },
    el("h2", {}, isAnalysis ? "Duplicate this analysis" : "Duplicate this ML task"),
    el("label", { htmlFor: "duplicate-project" }, "Into the project"),
    projectSelect,
    ...fields,
    message,
    el("div", { className: "dialog-actions" }, submit, cancel),
  );
  const element = el("dialog", { className: "duplicate-dialog", id: "duplicate-dialog", "aria-label": "Duplicate" }, form);

  const namePlaceholder = () => {
    // The server's default: "Copy of <name>" here, the same name in another project.
    nameInput.placeholder = Number(projectSelect.value) === project ? `Copy of ${name}` : name;
  };
  const loadAnalyses = async () => {
    analysisSelect.replaceChildren();
    submit.disabled = true;
    const analyses = await getJSON(`/api/projects/${projectSelect.value}/analyses/`);
    analysisSelect.replaceChildren(
      ...analyses.map((a) => el("option", { value: String(a.id), selected: a.id === analysis }, a.name)),
    );
    if (!analyses.length) {
      showMessage("This project has no analysis yet: duplicate the whole analysis instead.", "info", message);
    } else {
      showMessage("", "info", message);
      submit.disabled = false;
    }
  };

  async function load() {
    showMessage("", "info", message);
    try {
      const projects = (await getJSON("/api/projects/")).filter((p) => EDITING.has(p.role));
      projectSelect.replaceChildren(
        ...projects.map((p) => el("option", { value: String(p.id), selected: p.id === project }, p.name)),
      );
      if (!projects.length) {
        showMessage("You are editor in no project, so there is nowhere to put a copy.", "info", message);
        submit.disabled = true;
        return;
      }
      submit.disabled = false;
      if (isAnalysis) namePlaceholder();
      else await loadAnalyses();
    } catch (error) {
      showMessage(error.message, "error", message);
    }
  }

  projectSelect.addEventListener("change", () => {
    if (isAnalysis) namePlaceholder();
    else loadAnalyses().catch((error) => showMessage(error.message, "error", message));
  });
  cancel.addEventListener("click", () => element.close());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await busy(submit, async () => {
      try {
        const copy = isAnalysis
          ? await postJSON(`/api/analyses/${id}/duplicate/`, {
              project: Number(projectSelect.value),
              name: nameInput.value.trim(),
            })
          : await postJSON(`/api/mltasks/${id}/duplicate/`, { analysis: Number(analysisSelect.value) });
        const page = isAnalysis ? "analyses" : "mltasks";
        window.location.assign(`/projects/${copy.project}/${page}/${copy.id}/`);
      } catch (error) {
        showMessage(error.message, "error", message);
      }
    });
  });
  return { element, load };
}
