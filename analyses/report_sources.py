"""The model report's model summary and provenance: what the runner wrote, checked, plus what the
database knows (the design snapshot, the dataset, the worker).

``model_graph.json`` and ``provenance.json`` come from the runner, which is untrusted: they are
read without following links, size-capped, and only the expected fields of the expected types are
kept (strings trimmed), so a hostile file can neither break the page nor grow the answer.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import IO, Any

from django.conf import settings

from analyses.models import Dataset, Session
from analyses.serializers import iso
from training_worker.model_graph import MAX_LAYERS, MODEL_GRAPH_FILE
from training_worker.provenance import PROVENANCE_FILE

MAX_FILE_BYTES = 20 * 1024**2
MAX_EDGES = 4 * MAX_LAYERS
MAX_TEXT = 1_000
CODE_FIELDS = ("architecture_code", "preprocessing_code")


def model_summary(session: Session, output: Path) -> dict[str, Any]:
    """Keras' summary text and counts (the ``model`` event), and the layer graph the runner saved."""
    info = session.model_info or {}
    graph = _runner_json(session, output, MODEL_GRAPH_FILE)
    layers = graph.get("layers") if isinstance(graph, dict) else None
    if not isinstance(layers, list):
        return {
            "summary": _text(info.get("summary"), 200_000),
            "params": _integer(info.get("params")),
            "input_shapes": info.get("input_shapes") or {},
            "graph": None,
            "note": "This session kept no layer graph (it was trained before the report existed).",
        }
    return {
        "summary": _text(info.get("summary"), 200_000),
        "params": _integer(info.get("params")),
        "input_shapes": info.get("input_shapes") or {},
        "graph": clean_graph(graph),
        "note": _text(graph.get("note"), MAX_TEXT),
    }


def clean_graph(graph: dict[str, Any]) -> dict[str, Any]:
    """The expected fields of ``model_graph.json`` only; edges only between listed layers."""
    layers = []
    for layer in graph.get("layers", [])[:MAX_LAYERS]:
        if isinstance(layer, dict) and isinstance(layer.get("name"), str):
            layers.append(
                {
                    "name": _text(layer["name"], 200),
                    "class": _text(layer.get("class"), 200),
                    "output_shape": _text(layer.get("output_shape"), 200),
                    "params": _integer(layer.get("params")),
                }
            )
    names = {layer["name"] for layer in layers}
    edges = [
        [edge[0], edge[1]]
        for edge in (graph.get("edges") or [])[:MAX_EDGES]
        if isinstance(edge, list) and len(edge) == 2 and edge[0] in names and edge[1] in names
    ]
    return {
        "kind": _text(graph.get("kind"), 40),
        "model_class": _text(graph.get("model_class"), 200),
        "name": _text(graph.get("name"), 200),
        "graph": graph.get("graph") is True,
        "layers": layers,
        "edges": edges,
        "inputs": [name for name in graph.get("inputs") or [] if name in names],
        "outputs": [name for name in graph.get("outputs") or [] if name in names],
        "params": _integer(graph.get("params")),
        "trainable_params": _integer(graph.get("trainable_params")),
        "non_trainable_params": _integer(graph.get("non_trainable_params")),
    }


def provenance(session: Session, output: Path) -> dict[str, Any]:
    """The exact code, settings, dataset, seed, library versions and device that made the model."""
    design = session.design or {}
    training = dict(design.get("training") or {})
    training_code = training.pop("code", "") if training.get("mode") == "advanced" else ""
    training.pop("code", None)  # standard mode ignores it: showing it would mislead
    snapshot = {
        key: value
        for key, value in design.items()
        if key not in (*CODE_FIELDS, "training", "project_variables")
    }
    environment = _runner_json(session, output, PROVENANCE_FILE)
    return {
        "code": {
            "architecture": design.get("architecture_code") or "",
            "preprocessing": design.get("preprocessing_code") or "",
            "training": training_code or "",
        },
        "training_mode": training.get("mode", "standard"),
        "settings": snapshot | {"training": training},
        "project_variables": design.get("project_variables") or {},
        "design_version": design.get("version"),
        "seed": (design.get("split") or {}).get("seed"),
        "dataset": _datasets(session),
        "environment": clean_environment(environment) if isinstance(environment, dict) else None,
        "worker": session.worker or None,
        "gpus": getattr(session, "devices", None) or None,
        "isolation": session.isolation or {},
        "created_by": session.created_by.username if session.created_by else None,
        "started_at": iso(session.started_at),
        "ended_at": iso(session.ended_at),
    }


def clean_environment(environment: dict[str, Any]) -> dict[str, Any]:
    versions = environment.get("versions") if isinstance(environment.get("versions"), dict) else {}
    return {
        "versions": {_text(name, 60): _text(value, 100) for name, value in list(versions.items())[:30]},
        "device": _text(environment.get("device"), MAX_TEXT),
        "backend": _text(environment.get("backend"), 60),
        "devices": [_text(name, 200) for name in (environment.get("devices") or [])[:64]],
        "accelerators": [_text(name, 200) for name in (environment.get("accelerators") or [])[:64]],
        "platform": _text(environment.get("platform"), 200),
        "machine": _text(environment.get("machine"), 60),
        "seed": _integer(environment.get("seed")),
    }


def _datasets(session: Session) -> dict[str, Any]:
    """The dataset trained on (and an explicit test dataset): an uploaded file is never changed, so
    its id and upload time name the exact data."""
    dataset = session.mltask.analysis.dataset
    described = _dataset(dataset)
    split = (session.design or {}).get("split") or {}
    if split.get("mode") == "explicit" and split.get("test_dataset"):
        test = Dataset.objects.filter(pk=split["test_dataset"], project_id=dataset.project_id).first()
        described["test_dataset"] = _dataset(test) if test else {"id": split["test_dataset"], "deleted": True}
    described["sampling"] = split.get("sampling")
    return described


def _dataset(dataset: Dataset) -> dict[str, Any]:
    return {
        "id": dataset.pk,
        "name": dataset.name,
        "filename": dataset.original_filename,
        "rows": dataset.rows,
        "size_bytes": dataset.size_bytes,
        "uploaded_at": iso(dataset.created_at),
        "source": dataset.source_summary,
    }


def session_workdir(session: Session) -> Path:
    """The session's work dir, links resolved (a warm runner's work dir is linked there)."""
    return (Path(settings.DATA_DIR) / "sessions" / str(session.pk)).resolve()


def is_session_file(session: Session, path: Path) -> bool:
    """A regular file (not a link) inside the session's own work dir."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and path.resolve().is_relative_to(session_workdir(session))


def open_session_file(session: Session, path: Path) -> IO[bytes]:
    """The file opened for reading, refusing links (also one swapped in since the check)."""
    if not is_session_file(session, path):
        raise FileNotFoundError(path)
    return os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb")


def _runner_json(session: Session, output: Path, relative: str) -> Any:
    """A JSON file the runner wrote in ``output/`` (None when absent, a link, too big or not JSON)."""
    path = output / Path(relative).name
    try:
        with open_session_file(session, path) as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_FILE_BYTES:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _text(value: Any, limit: int) -> str | None:
    return None if value is None else str(value)[:limit]


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
