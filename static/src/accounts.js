// Accounts page (staff): create teammates' accounts and groups, and put users in groups.
import { api, getJSON, postJSON } from "./lib/api.js";
import { $, busy, el, pageData, showMessage } from "./lib/dom.js";

const data = pageData();

function renderGroups(groups) {
  $("#groups tbody").replaceChildren(
    ...groups.map((group) => {
      const members = group.members.map((username) => {
        const remove = el("button", { type: "button", className: "button-link", "aria-label": `Remove ${username} from ${group.name}` }, "×");
        remove.addEventListener("click", () =>
          act(remove, () => api("DELETE", `/api/groups/${encodeURIComponent(group.name)}/members/${encodeURIComponent(username)}/`),
            `${username} left ${group.name}.`),
        );
        return el("li", { dataset: { username } }, username, " ", remove);
      });
      const drop = el("button", { type: "button", className: "button-danger", "aria-label": `Delete group ${group.name}` }, "Delete");
      drop.addEventListener("click", () => {
        if (!window.confirm(`Delete group ${group.name}? Its users lose the roles it gave them.`)) return;
        act(drop, () => api("DELETE", `/api/groups/${encodeURIComponent(group.name)}/`), `Group ${group.name} was deleted.`);
      });
      return el(
        "tr",
        { dataset: { group: group.name } },
        el("td", {}, group.name),
        el("td", {}, members.length ? el("ul", { className: "inline-list" }, members) : el("span", { className: "muted" }, "nobody yet")),
        el("td", {}, drop),
      );
    }),
  );
  $("#no-groups").hidden = groups.length > 0;
  const select = $("#member-group");
  const chosen = select.value;
  select.replaceChildren(...groups.map((group) => el("option", { value: group.name, selected: group.name === chosen }, group.name)));
}

async function act(control, action, okText) {
  await busy(control, async () => {
    try {
      await action();
      showMessage(okText, "ok");
      renderGroups(await getJSON("/api/groups/"));
    } catch (error) {
      showMessage(error.message, "error");
    }
  });
}

function setupForms() {
  $("#new-user").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { username: $("#user-username").value.trim(), password: $("#user-password").value, email: $("#user-email").value.trim() };
    await busy($("#create-user"), async () => {
      try {
        const user = await postJSON("/api/users/", body);
        showMessage(`Account ${user.username} created.`, "ok");
        // A new row at once; the full list (groups, dates) comes with the next visit.
        $("#users tbody").append(el("tr", { dataset: { username: user.username } }, el("td", {}, user.username), el("td", {}, body.email), el("td"), el("td"), el("td", {}, "today")));
        $("#usernames").append(el("option", { value: user.username }));
        event.target.reset();
      } catch (error) {
        showMessage(error.message, "error");
      }
    });
  });
  $("#new-group").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("#group-name").value.trim();
    await act($("#create-group"), () => postJSON("/api/groups/", { name }), `Group ${name} created.`);
    $("#group-name").value = "";
  });
  $("#group-member").addEventListener("submit", async (event) => {
    event.preventDefault();
    const group = $("#member-group").value;
    const username = $("#member-user").value.trim();
    await act($("#add-to-group"), () => postJSON(`/api/groups/${encodeURIComponent(group)}/members/`, { username }), `${username} is in ${group}.`);
    $("#member-user").value = "";
  });
}

$("#usernames").replaceChildren(...data.usernames.map((username) => el("option", { value: username })));
renderGroups(data.groups);
setupForms();
