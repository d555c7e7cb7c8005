// Project page: upload a CSV with a progress bar (then open the new dataset), and, for owners,
// add members through the API.
import { api, postJSON } from "./lib/api.js";
import { $, busy, el, pageData, showMessage } from "./lib/dom.js";
import { uploadFile } from "./lib/upload.js";
import { setupActivity } from "./lib/activity.js";

const data = pageData();

function setupUpload() {
  const form = $("#upload-form");
  if (!form) return; // viewers get no form
  const status = $("#upload-status");
  const bar = $("#upload-progress");
  const percent = $("#upload-percent");
  const message = $("#upload-message");
  const button = $("#upload");

  const showProgress = (fraction) => {
    const value = Math.round(fraction * 100);
    bar.value = value;
    // Once the bytes are up, the server still reads the file to infer its schema.
    percent.textContent = value >= 100 ? "reading the file…" : `${value} %`;
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = $("#upload-file").files[0];
    if (!file) {
      showMessage("Choose a CSV file first.", "error", message);
      return;
    }
    const formData = new FormData();
    formData.append("file", file);
    const name = $("#upload-name").value.trim();
    if (name) formData.append("name", name);
    showMessage("", "info", message);
    status.hidden = false;
    showProgress(0);
    await busy(button, async () => {
      try {
        const dataset = await uploadFile(`/api/projects/${data.project}/datasets/`, formData, showProgress);
        percent.textContent = "done";
        window.location.assign(`/projects/${data.project}/datasets/${dataset.id}/`);
      } catch (error) {
        status.hidden = true;
        showMessage(error.message, "error", message);
      }
    });
  });
}

function setupMembers() {
  const form = $("#add-member");
  if (!form) return; // only owners manage members
  const message = $("#member-message");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = $("#member-username").value.trim();
    const role = $("#member-role").value;
    if (!username) return;
    await busy($("#add-member-button"), async () => {
      try {
        const member = await postJSON(`/api/projects/${data.project}/members/`, { username, role });
        const list = $("#members");
        const existing = [...list.children].find((item) => item.dataset.username === member.username);
        const item = el(
          "li",
          { dataset: { username: member.username } },
          el("span", { className: "member-name" }, member.username),
          " ",
          el("span", { className: `role role-${member.role}` }, member.role),
        );
        if (existing) existing.replaceWith(item);
        else list.append(item);
        $("#member-username").value = "";
        showMessage(`${member.username} is now ${member.role}.`, "ok", message);
      } catch (error) {
        showMessage(error.message, "error", message);
      }
    });
  });
}

// Owners: delete the project once its name is typed (the button stays disabled until then).
function setupDelete() {
  const form = $("#delete-project-form");
  if (!form) return;
  const input = $("#delete-project-name");
  const button = $("#delete-project-button");
  input.addEventListener("input", () => {
    button.disabled = input.value.trim() !== input.dataset.name;
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (input.value.trim() !== input.dataset.name) return;
    await busy(button, async () => {
      try {
        await api("DELETE", `/api/projects/${data.project}/`);
        window.location.assign("/");
      } catch (error) {
        showMessage(error.message, "error", $("#delete-project-message"));
      }
    });
  });
}

setupActivity(data.project);
setupUpload();
setupMembers();
setupDelete();
