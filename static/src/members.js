// Members page: the project's users and groups with their roles; owners add, change and remove
// them through the API. Every change re-reads the list, so the page shows what the server kept.
import { api, getJSON, postJSON } from "./lib/api.js";
import { $, busy, el, pageData, showMessage } from "./lib/dom.js";

const data = pageData();
const base = `/api/projects/${data.project}/members/`;

function roleChip(role) {
  return el("span", { className: `role role-${role}` }, role);
}

// Owners get a role select (a change is saved at once) and a Remove button.
function roleCell(member, kind) {
  if (!data.is_owner) return el("td", {}, roleChip(member.role));
  const name = kind === "group" ? member.name : member.username;
  const select = el(
    "select",
    { "aria-label": `Role of ${kind} ${name}`, dataset: { role: member.role } },
    data.roles.map((role) => el("option", { value: role, selected: role === member.role }, role)),
  );
  select.addEventListener("change", () =>
    change(select, () => postJSON(base, { [kind === "group" ? "group" : "username"]: name, role: select.value }),
      `${name} is now ${select.value}.`),
  );
  return el("td", {}, select);
}

function removeCell(member, kind) {
  if (!data.is_owner) return null;
  const name = kind === "group" ? member.name : member.username;
  const url = kind === "group" ? `${base}groups/${encodeURIComponent(name)}/` : `${base}${encodeURIComponent(name)}/`;
  const button = el("button", { type: "button", className: "button-danger", "aria-label": `Remove ${kind} ${name}` }, "Remove");
  button.addEventListener("click", () => {
    const self = kind === "user" && name === data.me;
    if (self && !window.confirm("Remove yourself from this project? You will lose access to it.")) return;
    change(button, () => api("DELETE", url), `${name} was removed.`, self);
  });
  return el("td", {}, button);
}

function render(members) {
  const users = members.users || [];
  const groups = members.groups || [];
  $("#member-users tbody").replaceChildren(
    ...users.map((m) =>
      el("tr", { dataset: { username: m.username } }, el("td", {}, m.username), roleCell(m, "user"), removeCell(m, "user")),
    ),
  );
  $("#member-groups tbody").replaceChildren(
    ...groups.map((m) =>
      el(
        "tr",
        { dataset: { group: m.name } },
        el("td", {}, m.name),
        el("td", { className: "small" }, m.members.length ? m.members.join(", ") : el("span", { className: "muted" }, "nobody yet")),
        roleCell(m, "group"),
        removeCell(m, "group"),
      ),
    ),
  );
  $("#no-users").hidden = users.length > 0;
  $("#no-groups").hidden = groups.length > 0;
}

async function reload() {
  render(await getJSON(base));
}

// Runs one change; on success says so and shows the list again, on failure (e.g. 409 for the last
// owner) shows the server's reason and the list as it still is.
async function change(control, action, okText, leaving = false) {
  await busy(control, async () => {
    try {
      await action();
      if (leaving) {
        window.location.assign("/");
        return;
      }
      showMessage(okText, "ok");
    } catch (error) {
      showMessage(error.message, "error");
    }
    try {
      await reload();
    } catch (error) {
      showMessage(error.message, "error");
    }
  });
}

function setupForms() {
  const userForm = $("#add-user");
  if (!userForm) return; // only owners manage members
  $("#group-names").replaceChildren(...data.groups.map((name) => el("option", { value: name })));
  userForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = $("#new-username").value.trim();
    const role = $("#new-user-role").value;
    if (!username) return;
    await change($("#add-user-button"), () => postJSON(base, { username, role }), `${username} is now ${role}.`);
    $("#new-username").value = "";
  });
  $("#add-group").addEventListener("submit", async (event) => {
    event.preventDefault();
    const group = $("#new-group").value.trim();
    const role = $("#new-group-role").value;
    if (!group) return;
    await change($("#add-group-button"), () => postJSON(base, { group, role }), `Group ${group} is now ${role}.`);
    $("#new-group").value = "";
  });
}

render(data.members);
setupForms();
