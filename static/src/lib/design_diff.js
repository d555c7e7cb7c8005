// How a diff between two designs is drawn (the compare page's two sessions, the history's two
// revisions): the answer's `settings` rows ({path, before, after, change}) and `code` diffs
// ({name, label, changed, diff}: a unified diff, one line-coloured span per line).
import { el } from "./dom.js";

export function diffLineClass(line) {
  if (line.startsWith("+++") || line.startsWith("---")) return "diff-file";
  if (line.startsWith("@@")) return "diff-hunk";
  if (line.startsWith("+")) return "diff-add";
  if (line.startsWith("-")) return "diff-del";
  return "diff-context";
}

export function settingText(value, change, side) {
  if ((change === "added" && side === "before") || (change === "removed" && side === "after")) return "(not set)";
  if (value === null || value === undefined) return "–";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

export function settingRow(item) {
  return el(
    "tr",
    { className: `setting-${item.change}`, dataset: { path: item.path } },
    el("td", { className: "mono" }, item.path),
    el("td", { className: "mono diff-before" }, settingText(item.before, item.change, "before")),
    el("td", { className: "mono diff-after" }, settingText(item.after, item.change, "after")),
  );
}

export function codeDiffBlock(item) {
  return el(
    "details",
    { className: "code-diff", open: true, dataset: { code: item.name } },
    el("summary", {}, `${item.label} code`),
    el(
      "pre",
      { className: "diff-block" },
      ...item.diff.split("\n").map((line) => el("span", { className: `diff-line ${diffLineClass(line)}` }, line || " ")),
    ),
  );
}
