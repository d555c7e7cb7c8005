// Analysis page: add an ML task (target + prediction type) and open its design page.
import { $, busy, pageData, showMessage } from "./lib/dom.js";
import { createMLTask, mltaskPageUrl } from "./lib/mltasks.js";
import { setupDuplicate } from "./lib/duplicate.js";

const data = pageData();
const form = $("#new-mltask");

if (form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const target = $("#target").value;
    if (!target) {
      showMessage("Choose the target column: the column the model learns to predict.", "error");
      return;
    }
    await busy($("#create-mltask"), async () => {
      try {
        const mltask = await createMLTask(data.analysis, target, $("#mltask-prediction-type").value);
        window.location.assign(mltaskPageUrl(data.project, mltask.id));
      } catch (error) {
        showMessage(error.message, "error");
      }
    });
  });
}
setupDuplicate($("#duplicate"), { kind: "analysis", id: data.analysis, project: data.project });
