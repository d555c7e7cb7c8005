"""Prediction columns as ``predictions.csv`` names them, from a model's raw output.

One target: ``prediction`` and, for classification, ``proba_<label>`` per class. A multi-output
model: ``prediction (<target>)`` and ``proba_<label> (<target>)`` per target. Used by the
sandboxed scorer (training_worker.scoring), by the web side that checks what the scorer wrote,
and by the exported bundle's ``predict.py``, so all three name and shape columns alike.

Importable without Django or TensorFlow (the bundle copies it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from training_worker.defaults import output_name
from training_worker.metrics import class_probabilities, outputs_by_name, predicted_classes

# Feature types read as text, as the runner reads them for training (preprocessing.read_dataset).
TEXT_TYPES = ("categorical", "text", "date", "image")


def column_names(targets: list[tuple[str, list[str] | None]]) -> list[str]:
    """The prediction columns for ``targets`` ([(target, classes or None)], the first one first)."""
    names: list[str] = []
    multi = len(targets) > 1
    for target, classes in targets:
        suffix = f" ({target})" if multi else ""
        names.append(f"prediction{suffix}")
        names += [f"proba_{label}{suffix}" for label in classes or []]
    return names


def prediction_frame(preprocessing: Any, output: Any, output_names: list[str]) -> pd.DataFrame:
    """The prediction columns for a model ``output`` (``model.predict``'s result) of ``preprocessing``
    (a training_worker.preprocessing.Preprocessing); ``output_names``: ``model.output_names``."""
    heads = preprocessing.targets
    multi = len(heads) > 1
    outputs = outputs_by_name(list(output_names), output) if multi else {None: np.asarray(output)}
    columns: dict[str, Any] = {}
    for head in heads:
        suffix = f" ({head.target})" if multi else ""
        raw = outputs[output_name(head.target) if multi else None]
        if head.classes is None:
            columns[f"prediction{suffix}"] = np.asarray(head.output_to_predictions(raw), dtype=np.float64)
            continue
        labels = np.asarray(head.classes, dtype=object)
        columns[f"prediction{suffix}"] = labels[predicted_classes(head.prediction_type, raw)]
        probabilities = class_probabilities(head.prediction_type, raw)
        for position, label in enumerate(head.classes):
            columns[f"proba_{label}{suffix}"] = probabilities[:, position]
    return pd.DataFrame(columns)


def text_columns(features: list[Any]) -> set[str]:
    """Input columns to read as text (``FittedFeature``s or feature dicts with ``name`` and ``type``)."""
    found = set()
    for feature in features:
        name = feature["name"] if isinstance(feature, dict) else feature.name
        kind = feature.get("type") if isinstance(feature, dict) else feature.type
        if kind in TEXT_TYPES:
            found.add(name)
    return found
