"""Running the user's code tabs, and turning what goes wrong into errors that help.

Each tab's code is compiled with the tab as its file name (``<architecture>``, ``<training>``), so
tracebacks can be trimmed to the user's own frames and point at a 1-based line of that tab. Every
error says the phase, the tab and line, what happened, what was expected and how to fix it.

Only the runner imports this module: it executes user code.
"""

from __future__ import annotations

import linecache
import traceback
from collections.abc import Callable
from types import CodeType, TracebackType
from typing import Any

TABS = ("architecture", "training", "preprocessing")
MAX_MESSAGE_DETAIL = 1_500
MAX_TRACEBACK_CHARS = 20_000  # the end of a traceback is the informative part
TAB_TITLES = {"architecture": "Architecture", "training": "Training", "preprocessing": "Preprocessing"}


class UserCodeError(Exception):
    """A failure to show on the page: the ``error`` of the done event (events.CodeError)."""

    def __init__(
        self,
        phase: str,
        message: str,
        tab: str | None = None,
        line: int | None = None,
        traceback_text: str = "",
    ) -> None:
        super().__init__(message)
        self.phase, self.message, self.tab, self.line, self.traceback_text = (
            phase,
            message,
            tab,
            line,
            traceback_text,
        )

    def to_error(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "tab": self.tab,
            "line": self.line,
            "message": self.message,
            "traceback": self.traceback_text[-MAX_TRACEBACK_CHARS:],
        }


def filename_for(tab: str) -> str:
    return f"<{tab}>"


def compile_tab(code: str, tab: str, phase: str) -> CodeType:
    """Compile one tab's code; a SyntaxError becomes a UserCodeError at its line."""
    filename = filename_for(tab)
    # Registered so tracebacks through this code show the user's lines, like a real file's.
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
    try:
        return compile(code, filename, "exec")
    except SyntaxError as exc:
        where = f"line {exc.lineno}" if exc.lineno else "an unknown line"
        shown = f"\n    {exc.text.rstrip()}" if exc.text else ""
        raise UserCodeError(
            phase=phase,
            tab=tab,
            line=exc.lineno,
            message=(
                f"{type(exc).__name__} in the {TAB_TITLES[tab]} tab at {where}: {exc.msg}.{shown}\n"
                "Python could not read the code, so nothing ran. Fix that line (an unclosed bracket or "
                "quote on the line before often shows up here)."
            ),
            traceback_text="".join(traceback.format_exception_only(exc)),
        ) from None


def execute_tab(code: CodeType, tab: str, phase: str, bindings: dict[str, Any]) -> dict[str, Any]:
    """Run compiled tab code in a fresh namespace holding ``bindings`` (keras, np, ...)."""
    namespace: dict[str, Any] = {"__name__": f"dlstudio_{tab}", "__builtins__": __builtins__, **bindings}
    try:
        exec(code, namespace)  # the one place user code runs, inside the sandbox
    except (Exception, SystemExit) as exc:  # sys.exit() in user code is the user's error too
        raise describe_exception(exc, phase, f"The {TAB_TITLES[tab]} tab's top-level code raised") from exc
    return namespace


def user_function(namespace: dict[str, Any], name: str, signature: str, tab: str, phase: str) -> Callable:
    function = namespace.get(name)
    if not callable(function):
        found = "no such name" if function is None else f"a {type(function).__name__}"
        raise UserCodeError(
            phase=phase,
            tab=tab,
            message=(
                f"The {TAB_TITLES[tab]} tab must define a function {name}{signature}; found {found}. "
                f"Add `def {name}{signature}:` (the default code shows one)."
            ),
        )
    return function


def call_user_function(function: Callable, args: tuple[Any, ...], phase: str, expected: str = "") -> Any:
    """Call a user function; any exception becomes a UserCodeError at the user's deepest line.

    A UserCodeError raised inside it already says what went wrong and where (e.g. the Training
    tab's score() called by a base callback during the user's fit_model): it passes unchanged.
    """
    try:
        return function(*args)
    except UserCodeError:
        raise
    except (Exception, SystemExit) as exc:
        raise describe_exception(exc, phase, f"{function.__name__}() raised", expected) from exc


def describe_exception(exc: BaseException, phase: str, what: str, expected: str = "") -> UserCodeError:
    """A UserCodeError for an exception raised while user code (or Keras on its behalf) ran."""
    frames = _user_frames(exc.__traceback__)
    tab = line = None
    if frames:
        tab, line = frames[-1].filename.strip("<>"), frames[-1].lineno
    where = f" at line {line} of the {TAB_TITLES.get(tab or '', tab)} tab" if tab else ""
    detail = _concise(str(exc)) or "(no message)"
    message = f"{what} {type(exc).__name__}{where}: {detail}"
    if expected:
        message += f"\n{expected}"
    if tab:
        message += f"\nFix the code at line {line} of the {TAB_TITLES.get(tab, tab)} tab and train again."
    return UserCodeError(phase=phase, tab=tab, line=line, message=message, traceback_text=_trimmed(exc))


def _concise(detail: str) -> str:
    """The gist of an exception message: TensorFlow's graph errors embed a whole stack and node names."""
    noise = ("File ", "Graph execution error", "Detected at node", "[[")
    lines = [
        line.strip() for line in detail.splitlines() if line.strip() and not line.strip().startswith(noise)
    ]
    gist = "\n".join(lines)
    return gist if len(gist) <= MAX_MESSAGE_DETAIL else gist[:MAX_MESSAGE_DETAIL] + " ..."


def _user_frames(tb: TracebackType | None) -> list[traceback.FrameSummary]:
    user_files = {filename_for(tab) for tab in TABS}
    return [frame for frame in traceback.extract_tb(tb) if frame.filename in user_files]


def _trimmed(exc: BaseException) -> str:
    """The traceback from the first user frame on: Keras' and the runner's own frames are noise."""
    frames = traceback.extract_tb(exc.__traceback__)
    user_files = {filename_for(tab) for tab in TABS}
    first = next((i for i, frame in enumerate(frames) if frame.filename in user_files), None)
    if first is None:
        return "".join(traceback.format_exception_only(exc))
    shown = traceback.StackSummary.from_list(frames[first:])
    return (
        "Traceback (most recent call last):\n"
        + "".join(shown.format())
        + "".join(traceback.format_exception_only(exc))
    )


# --------------------------------------------------------------------------- the output layer check

EXPECTED_OUTPUT = {
    "regression": "regression: last layer must be Dense(1) with a linear activation (no activation)",
    "binary": ("binary: last layer must be Dense(1, activation='sigmoid') or Dense(2, activation='softmax')"),
    "multiclass": "multiclass: last layer must be Dense({n_classes}, activation='softmax')",
}


def check_output_layer(model: Any, prediction_type: str, n_classes: int) -> None:
    """Refuse a model whose output cannot be read as this prediction type's predictions."""
    expected = EXPECTED_OUTPUT[prediction_type].format(n_classes=n_classes)
    outputs = getattr(model, "outputs", None)
    if outputs is not None and len(outputs) != 1:
        raise _output_error(
            expected, f"a model with {len(outputs)} outputs", "Return a model with one output."
        )
    layer = _output_layer(model)
    if layer is None:
        return  # a subclassed model not built yet: its output is only known once it runs
    units = _output_units(model, layer)
    activation = _activation_name(layer)
    if not _acceptable_output(prediction_type, units, activation, n_classes):
        received = _received_output(layer, units, activation, _output_shape(model, layer))
        raise _output_error(
            expected,
            received,
            "Change the last layer of build_model; for multiclass use n_classes as its size."
            if prediction_type == "multiclass"
            else "Change the last layer of build_model.",
        )


def _acceptable_output(
    prediction_type: str, units: int | None, activation: str | None, n_classes: int
) -> bool:
    return {
        # A layer without an activation (Add, Reshape, ...) passes values through: fine for regression.
        "regression": units == 1 and activation in ("linear", None),
        "binary": (units, activation) in ((1, "sigmoid"), (2, "softmax")),
        "multiclass": units == n_classes and activation == "softmax",
    }[prediction_type]


def _received_output(layer: Any, units: int | None, activation: str | None, shape: Any) -> str:
    if activation is None or units is None:
        return f"a {type(layer).__name__} layer with output shape {shape}"
    return f"{type(layer).__name__}({units}, activation='{activation}')"


def _output_error(expected: str, received: str, fix: str) -> UserCodeError:
    return UserCodeError(
        phase="build_model",
        tab="architecture",
        message=f"{expected}; got {received}. {fix}",
    )


def _output_layer(model: Any) -> Any:
    outputs = getattr(model, "outputs", None)
    if outputs:
        history = getattr(outputs[0], "_keras_history", None)
        if history is not None:
            return history[0]  # the layer that produced the model's output
    layers = getattr(model, "layers", None)
    return layers[-1] if layers else None


def _output_shape(model: Any, layer: Any) -> tuple | None:
    outputs = getattr(model, "outputs", None)
    if outputs:
        return tuple(outputs[0].shape)
    units = getattr(layer, "units", None)
    return None if units is None else (None, units)


def _output_units(model: Any, layer: Any) -> int | None:
    shape = _output_shape(model, layer)
    return shape[-1] if shape is not None and len(shape) == 2 else None


def _activation_name(layer: Any) -> str | None:
    """The output activation's name, or None for a layer that has none (Add, Reshape, ...)."""
    if type(layer).__name__ == "Softmax":
        return "softmax"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    if isinstance(activation, str):
        return activation
    return getattr(activation, "__name__", type(activation).__name__)


def check_output_layers(model: Any, targets: list[tuple[str, str, int]]) -> None:
    """A multi-output model: one output per target, named after it, each fit for its type.

    ``targets`` lists (name, prediction type, number of classes) in the design's order.
    """
    names = [name for name, _, _ in targets]
    listed = ", ".join(f"{name!r} ({kind})" for name, kind, _ in targets)
    outputs = list(getattr(model, "outputs", None) or [])
    if not outputs:
        return  # a subclassed model not built yet: its outputs are only known once it runs
    output_names = list(getattr(model, "output_names", None) or [])
    if len(outputs) != len(targets):
        raise _output_error(
            f"This ML task has {len(targets)} targets, so the model needs {len(targets)} outputs, "
            f"one per target and named after it: {listed}",
            f"a model with {len(outputs)} output(s)"
            + (f" named {', '.join(map(repr, output_names))}" if output_names else ""),
            "Return keras.Model(inputs, outputs={target: layer, ...}) or give each output layer "
            "name=<target>.",
        )
    unnamed = [name for name in names if name not in output_names]
    if unnamed:
        raise _output_error(
            f"Each output must be named after its target: {listed}",
            f"outputs named {', '.join(map(repr, output_names))}",
            f"Name the output layer of {unnamed[0]!r} name={unnamed[0]!r} (or key the outputs dict by it).",
        )
    by_name = dict(zip(output_names, outputs, strict=True))
    for name, prediction_type, n_classes in targets:
        tensor = by_name[name]
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            continue
        layer = history[0]
        shape = tuple(tensor.shape)
        units = shape[-1] if len(shape) == 2 else None
        activation = _activation_name(layer)
        if not _acceptable_output(prediction_type, units, activation, n_classes):
            received = _received_output(layer, units, activation, shape)
            expected = EXPECTED_OUTPUT[prediction_type].format(n_classes=n_classes)
            raise _output_error(
                f"Output {name!r} is {expected}",
                received,
                f"Change the last layer of the {name!r} head in build_model"
                + ("; use n_classes[target] as its size." if prediction_type == "multiclass" else "."),
            )
