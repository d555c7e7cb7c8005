// The code editor: CodeMirror 6 with Python highlighting, line numbers and lint markers for
// errors the server reports (a failed session's line, later Validate's errors).
import { indentWithTab } from "@codemirror/commands";
import { python } from "@codemirror/lang-python";
import { lintGutter, setDiagnostics } from "@codemirror/lint";
import { EditorState } from "@codemirror/state";
import { EditorView, keymap } from "@codemirror/view";
import { basicSetup } from "codemirror";

// onChange(text) runs after every edit, so the page can track unsaved changes.
export function createCodeEditor(parent, { doc = "", readOnly = false, onChange = () => {}, label = "" } = {}) {
  const extensions = [
    basicSetup,
    python(),
    lintGutter(),
    // Tab indents, as Python authors expect; Escape then Tab still leaves the editor.
    keymap.of([indentWithTab]),
    EditorView.updateListener.of((update) => {
      if (update.docChanged) onChange(update.state.doc.toString());
    }),
    EditorView.contentAttributes.of(label ? { "aria-label": label } : {}),
  ];
  if (readOnly) extensions.push(EditorState.readOnly.of(true), EditorView.editable.of(false));
  return new EditorView({ parent, state: EditorState.create({ doc, extensions }) });
}

export function getText(view) {
  return view.state.doc.toString();
}

// Replaces the whole text (e.g. "take theirs"); the caller decides whether that is an edit.
export function setText(view, text) {
  view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
}

// Marks 1-based `line` with `message` and scrolls it into view; out-of-range lines are clamped.
export function markLine(view, line, message, severity = "error") {
  const doc = view.state.doc;
  const number = Math.min(Math.max(1, line), doc.lines);
  const target = doc.line(number);
  view.dispatch(setDiagnostics(view.state, [{ from: target.from, to: target.to, severity, message }]));
  view.dispatch({ effects: EditorView.scrollIntoView(target.from, { y: "center" }) });
}

// Marks several 1-based lines at once ([{line, message, severity}], e.g. Validate's errors of one
// tab) without scrolling; an empty list clears them. Lines are clamped like markLine's.
export function setMarks(view, marks) {
  const doc = view.state.doc;
  const diagnostics = marks.map(({ line, message, severity = "error" }) => {
    const target = doc.line(Math.min(Math.max(1, Number(line) || 1), doc.lines));
    return { from: target.from, to: target.to, severity, message };
  });
  view.dispatch(setDiagnostics(view.state, diagnostics));
}

// Scrolls 1-based `line` into the middle of the editor's view.
export function revealLine(view, line) {
  const doc = view.state.doc;
  const target = doc.line(Math.min(Math.max(1, Number(line) || 1), doc.lines));
  view.dispatch({ effects: EditorView.scrollIntoView(target.from, { y: "center" }), selection: { anchor: target.from } });
}

export function clearMarks(view) {
  view.dispatch(setDiagnostics(view.state, []));
}
