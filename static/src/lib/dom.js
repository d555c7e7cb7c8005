// Small DOM helpers. Everything user-provided goes through textContent, never innerHTML.

export const $ = (selector, root = document) => root.querySelector(selector);

// Reads the JSON a template embedded with {% json_script %}.
export function pageData(id = "page-data") {
  const element = document.getElementById(id);
  return element ? JSON.parse(element.textContent) : {};
}

// el("td", {className: "num"}, "text", childNode, …): attributes are properties, children text or nodes.
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("aria-") || key === "role") node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// The page's message line (#message): kind is "error", "ok" or "info".
export function showMessage(text, kind = "error", target = document.getElementById("message")) {
  if (!target) return;
  target.replaceChildren();
  target.hidden = !text;
  target.className = `message message-${kind}`;
  target.setAttribute("role", kind === "error" ? "alert" : "status");
  if (text) target.append(text);
}

export function clearMessage(target) {
  showMessage("", "info", target);
}

export function formatNumber(value) {
  if (value === null || value === undefined || value === "") return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return String(value);
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e6)) return value.toExponential(3);
  return value.toFixed(4);
}

export function statusChip(status) {
  return el("span", { className: `chip chip-${status}` }, status);
}

// Disables a button while an action runs, so double clicks do not send twice.
export async function busy(button, action) {
  if (button) button.disabled = true;
  try {
    return await action();
  } finally {
    if (button) button.disabled = false;
  }
}
