// Profile page: my API tokens. Lists show a key's first 8 characters; a new key is shown once,
// right after it is made. Revoking asks first, then the token stops working at once.
import { api, postJSON } from "./lib/api.js";
import { $, busy, el, pageData, showMessage } from "./lib/dom.js";

const data = pageData();
let tokens = data.tokens || [];
let shownId = null; // the token whose whole key is on the page (just created)

function when(iso) {
  if (!iso) return el("span", { className: "muted" }, "never");
  const date = new Date(iso);
  return el("time", { dateTime: iso, title: date.toLocaleString() }, date.toLocaleString());
}

function render() {
  $("#tokens tbody").replaceChildren(
    ...tokens.map((token) => {
      const label = token.name || "unnamed";
      const revoke = el("button", { type: "button", className: "button-danger", "aria-label": `Revoke token ${label}` }, "Revoke");
      revoke.addEventListener("click", () => revokeToken(token, revoke));
      return el(
        "tr",
        { dataset: { tokenId: String(token.id) } },
        el("td", {}, token.name || el("span", { className: "muted" }, "unnamed")),
        el("td", { className: "mono" }, `${token.prefix}…`),
        el("td", {}, when(token.created_at)),
        el("td", {}, when(token.last_used_at)),
        el("td", {}, revoke),
      );
    }),
  );
  $("#no-tokens").hidden = tokens.length > 0;
}

async function revokeToken(token, button) {
  const label = token.name || `${token.prefix}…`;
  if (!window.confirm(`Revoke token ${label}? Scripts using it stop working.`)) return;
  await busy(button, async () => {
    try {
      await api("DELETE", `/api/tokens/${token.id}/`);
      tokens = tokens.filter((t) => t.id !== token.id);
      render();
      if (shownId === token.id) $("#new-token-shown").hidden = true; // the key shown is dead now
      showMessage(`Token ${label} revoked.`, "ok");
    } catch (error) {
      showMessage(error.message, "error");
    }
  });
}

function setupCreate() {
  $("#new-token").addEventListener("submit", async (event) => {
    event.preventDefault();
    await busy($("#create-token"), async () => {
      try {
        const created = await postJSON("/api/tokens/", { name: $("#token-name").value.trim() });
        const { token: key, ...listed } = created;
        tokens = [listed, ...tokens];
        render();
        $("#new-token-key").textContent = key;
        $("#new-token-name").textContent = listed.name || `${listed.prefix}…`;
        shownId = listed.id;
        $("#new-token-shown").hidden = false;
        $("#token-name").value = "";
        showMessage("", "info");
      } catch (error) {
        showMessage(error.message, "error");
      }
    });
  });
}

render();
setupCreate();
