"""The wire format between the runner, the supervising task and the browser.

The runner writes one JSON object per line to its event pipe (file descriptor 3). The supervising
task (trusted) parses and validates each line with :func:`parse_event`, stores it, then publishes
it to the channel group ``session-<id>``. The browser receives the same shapes, plus a first
``snapshot`` message (the session as the JSON API returns it).

This module must stay importable without Django or TensorFlow: the runner imports it too.
"""

from __future__ import annotations

import json
import math
from enum import StrEnum
from typing import Any, Literal, NotRequired, TypedDict

EVENT_FD = 3  # the runner writes events here unless EVENT_FD_VARIABLE names another descriptor
EVENT_FD_VARIABLE = "DLS_EVENT_FD"
MAX_EVENT_BYTES = 1_000_000  # a model summary of a huge network still fits; anything more is refused
MAX_LOG_CHARS = 4_000
# Epochs, batches and counts a runner may report: what a database integer column holds. The runner
# runs user code, which can write forged events (tests/training_worker/test_sandbox.py).
MAX_COUNT = 2**31 - 1
MAX_METRICS = 1_000  # values per epoch event (every metric of every output, Train and Test)
MAX_NAME_CHARS = 1_000  # a metric name holds a target column name: long ones exist


class Status(StrEnum):
    """Session statuses; see analyses.models.Session for the allowed transitions."""

    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    ABORTED = "aborted"


FINAL_STATUSES = (Status.SUCCEEDED, Status.INTERRUPTED, Status.FAILED, Status.ABORTED)


class StatusEvent(TypedDict):
    type: Literal["status"]
    status: str
    phase: str  # preprocessing | build_model | compile_model | fit | evaluate | predict | save


class ModelEvent(TypedDict):
    type: Literal["model"]
    summary: str
    params: int
    input_shapes: dict[str, list[int | None]]
    n_classes: int


class ProgressEvent(TypedDict):
    type: Literal["progress"]
    epoch: int  # 1-based
    batch: int  # 1-based, batches done in this epoch
    of: int  # batches per epoch
    epochs: NotRequired[int | None]  # epochs planned (the fit's), when known


class KeptEvent(TypedDict):
    """Which epoch's weights the trained model has (the best by ``metric``, or the last)."""

    type: Literal["kept"]
    epoch: int  # 1-based
    metric: str  # the log name, e.g. "Test ROC AUC"
    value: float | None
    keep: str  # best | last


class EpochEvent(TypedDict):
    type: Literal["epoch"]
    epoch: int  # 1-based
    seconds: float
    values: dict[str, float]  # "Train X" / "Test X" plus Keras' own logs ("loss", ...)


class LogEvent(TypedDict):
    type: Literal["log"]
    stream: str  # stdout | stderr
    text: str


class CodeError(TypedDict, total=False):
    phase: str  # preprocessing | build_model | compile_model | fit | evaluate | predict | save | runner
    tab: str | None  # architecture | training | None for the platform's own errors
    line: int | None  # 1-based line in that tab's code
    message: str  # what happened, what was expected, how to fix it
    traceback: str  # trimmed to the user's code where it applies


class DoneEvent(TypedDict, total=False):
    type: Literal["done"]
    status: str  # succeeded | interrupted | failed
    final_metrics: dict[str, float]
    error: CodeError | None
    artifacts: dict[str, str]  # name -> path relative to the work dir (model.keras, preprocessing)


Event = StatusEvent | ModelEvent | ProgressEvent | EpochEvent | LogEvent | DoneEvent
# "scored": a scoring run's rows done (training_worker.scoring): {"rows": done, "of": total}.
EVENT_TYPES = ("status", "model", "progress", "epoch", "kept", "log", "done", "scored")


def clean_number(value: Any) -> float | None:
    """A JSON-safe float: numpy scalars converted, NaN and infinities become None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def clean_values(values: dict[str, Any]) -> dict[str, float | None]:
    return {str(name): clean_number(value) for name, value in values.items()}


def encode_event(event: dict[str, Any]) -> bytes:
    return (json.dumps(event, separators=(",", ":"), allow_nan=False) + "\n").encode()


class BadEvent(ValueError):
    """A line from the runner that is not a valid event (the runner is untrusted)."""


def parse_event(line: bytes) -> dict[str, Any]:
    """Validate one line from the runner; raises BadEvent on anything unexpected."""
    if len(line) > MAX_EVENT_BYTES:
        raise BadEvent(f"event of {len(line)} bytes exceeds {MAX_EVENT_BYTES}")
    try:  # NaN and infinities are not JSON (encode_event never writes them); a database refuses them
        event = json.loads(line, parse_constant=_not_json)
    except ValueError as exc:
        raise BadEvent(f"not JSON: {exc}") from None
    if not isinstance(event, dict) or event.get("type") not in EVENT_TYPES:
        raise BadEvent("not an event object with a known type")
    kind = event["type"]
    if kind == "epoch":
        if not _count(event.get("epoch"), 1) or not isinstance(event.get("values"), dict):
            raise BadEvent(f"epoch event needs an epoch from 1 to {MAX_COUNT} and a values object")
        if len(event["values"]) > MAX_METRICS or any(
            len(str(name)) > MAX_NAME_CHARS for name in event["values"]
        ):
            raise BadEvent(f"epoch event holds more than {MAX_METRICS} values or a name too long")
        event["values"] = clean_values(event["values"])
        event["seconds"] = clean_number(event.get("seconds")) or 0.0
    elif kind == "progress":
        for key in ("epoch", "batch", "of"):
            if not _count(event.get(key)):
                raise BadEvent(f"progress event needs an integer {key} from 0 to {MAX_COUNT}")
        if event.get("epochs") is not None and not _count(event["epochs"]):
            raise BadEvent(f"progress event's epochs must be an integer from 0 to {MAX_COUNT}")
    elif kind == "kept":
        if not _count(event.get("epoch"), 1) or event.get("keep") not in ("best", "last"):
            raise BadEvent("kept event needs an epoch from 1 and keep best or last")
        event["metric"] = str(event.get("metric", ""))[:200]
        event["value"] = clean_number(event.get("value"))
    elif kind == "done":
        if event.get("status") not in (Status.SUCCEEDED, Status.INTERRUPTED, Status.FAILED):
            raise BadEvent("done event needs status succeeded, interrupted or failed")
        event["final_metrics"] = clean_values(event.get("final_metrics") or {})
    elif kind == "log":
        event["text"] = str(event.get("text", ""))[:MAX_LOG_CHARS]
    elif kind == "scored" and not all(_count(event.get(k), maximum=2**63 - 1) for k in ("rows", "of")):
        raise BadEvent("scored event needs integer rows and of, 0 or more")
    return event


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def _count(value: Any, minimum: int = 0, maximum: int = MAX_COUNT) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= maximum
