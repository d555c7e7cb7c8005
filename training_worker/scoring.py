"""Scoring in the sandbox: a trained session's model and fitted preprocessing applied to new rows.

The runner (``python -m training_worker.runner <workdir>``, same sandbox, same warm spare) runs
this instead of training when ``job.json`` has ``"mode": "score"``. Loading the model runs user
code (the Architecture tab defines custom layers and Lambda functions; unpickling the fitted
preprocessing may compile the Preprocessing tab's ``preprocess_image``), so it happens only here.

The job (written by training_worker.scoring_runs):

- ``model``, ``preprocessing``: the session's ``model.keras`` and ``preprocessing.joblib``, linked
  into the work dir; ``architecture_code``, ``variables``, ``runtime``, ``seed``, ``batch_size``;
- ``input``: ``{"kind": "dataset", "path": "dataset.parquet", "images": "images"?}`` (read a chunk
  at a time) or ``{"kind": "rows", "path": "rows.json"}`` (``{"columns": {name: [values]}}``);
- ``output``: where to write the prediction columns (training_worker.prediction_table) as Parquet,
  one row per input row, in input order.

Events: ``status`` (phases ``load_model``, ``predict``), ``scored`` (rows done, of), one ``done``.
"""

from __future__ import annotations

import contextlib
import json
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training_worker.arrays import ArrayStore, chunk_rows
from training_worker.dataset_files import iter_frames
from training_worker.events import Status
from training_worker.metrics import DEFAULT_METRICS, custom_score_enabled, greater_is_better, metric_names
from training_worker.prediction_table import prediction_frame, text_columns
from training_worker.preprocessing import Preprocessing, PreprocessingError
from training_worker.usercode import UserCodeError, compile_tab, execute_tab

Emit = Callable[[dict[str, Any]], None]
PHASE_FAILURES = {
    "load_model": "Loading the trained model failed with",
    "predict": "Predicting failed with",
}


def score(workdir: Path, job: dict[str, Any], emit: Emit) -> dict[str, Any]:
    """Run one scoring job; returns the ``done`` event."""
    try:
        rows = Scorer(workdir, job, emit).run()
    except UserCodeError as exc:
        return {"type": "done", "status": Status.FAILED.value, "final_metrics": {}, "error": exc.to_error()}
    return {
        "type": "done",
        "status": Status.SUCCEEDED.value,
        "final_metrics": {},
        "error": None,
        "artifacts": {"predictions": job["output"]},
        "rows": rows,
    }


class Scorer:
    def __init__(self, workdir: Path, job: dict[str, Any], emit: Emit) -> None:
        self.workdir, self.job, self.emit = workdir, job, emit

    def phase(self, name: str) -> contextlib.AbstractContextManager:
        from training_worker.runner import announced_phase

        return announced_phase(self.emit, name, PHASE_FAILURES.get(name, f"The {name} step raised"))

    def run(self) -> int:
        """Load, then predict chunk by chunk into the output file; returns the rows scored."""
        with self.phase("load_model"):
            model, preprocessing = self._load()
        with self.phase("predict"):
            return self._predict(model, preprocessing)

    def _load(self) -> tuple[Any, Preprocessing]:
        import joblib

        from training_worker.runner import _import_keras

        job = self.job
        code = compile_tab(job.get("architecture_code") or "", "architecture", "load_model")
        keras, _devices = _import_keras(int(job.get("seed", 1337)), job.get("runtime"))
        preprocessing = joblib.load(self.workdir / job["preprocessing"])
        bindings = self._bindings(keras, preprocessing)
        # Run as for training: what it defines (custom layers, Lambda functions) is what loading needs.
        namespace = execute_tab(code, "architecture", "load_model", bindings)
        model = keras.saving.load_model(
            self.workdir / job["model"],
            custom_objects=custom_objects(namespace, bindings),
            compile=False,
            safe_mode=False,  # Lambda layers hold the user's own bytecode; this is the user's sandbox
        )
        return model, preprocessing

    def _bindings(self, keras: Any, preprocessing: Preprocessing) -> dict[str, Any]:
        from training_worker import user_api

        first = preprocessing.targets[0]
        metric = self.job.get("metric")
        custom = custom_score_enabled(self.job.get("training"))
        if metric not in metric_names(first.prediction_type, with_custom_score=custom):
            metric = DEFAULT_METRICS[first.prediction_type]
        monitor = f"Test {metric}" + (f" ({first.target})" if len(preprocessing.targets) > 1 else "")
        variables = dict(self.job.get("variables") or {})
        variables |= {
            "DKU_MODEL_METRIC": monitor,
            "DKU_MODEL_METRIC_GREATER_IS_BETTER": greater_is_better(monitor),
        }
        user_api.configure(user_api.Context(variables=variables, workdir=str(self.workdir)))
        user_api.install_legacy_methods()
        return {"keras": keras, "np": np, **user_api.bindings()}

    def _predict(self, model: Any, preprocessing: Preprocessing) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        spec = self.job["input"]
        images = spec.get("images")
        images_dir = str(self.workdir / images) if images else None
        store = ArrayStore(self.workdir / ".arrays")
        batch_size = int(self.job.get("batch_size") or 32)
        frames, total = self._frames(preprocessing, spec)
        output = self.workdir / self.job["output"]
        output.parent.mkdir(parents=True, exist_ok=True)
        writer = None
        done = 0
        try:
            for frame in frames:
                inputs = preprocessing.transform_rows(
                    frame, store=store, images_dir=images_dir, label="score"
                )
                x = inputs[next(iter(inputs))] if len(inputs) == 1 else dict(inputs)
                raw = model.predict(x, batch_size=batch_size, verbose=0)
                table = pa.Table.from_pandas(
                    prediction_frame(preprocessing, raw, list(model.output_names)), preserve_index=False
                )
                if writer is None:
                    writer = pq.ParquetWriter(str(output), table.schema)
                writer.write_table(table.cast(writer.schema))
                done += len(frame)
                self.emit({"type": "scored", "rows": done, "of": total})
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise PreprocessingError("There are no rows to score.")
        return done

    def _frames(
        self, preprocessing: Preprocessing, spec: dict[str, Any]
    ) -> tuple[Iterator[pd.DataFrame], int]:
        """The input a chunk at a time, and its row count."""
        names = [feature.name for feature in preprocessing.features]
        as_text = text_columns(preprocessing.features)
        path = self.workdir / spec["path"]
        if spec.get("kind") == "rows":
            frame = rows_frame(json.loads(path.read_text()), names, as_text)
            return iter([frame]), len(frame)
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        missing = [name for name in names if name not in parquet.schema_arrow.names]
        if missing:
            raise PreprocessingError(
                f"The dataset lacks the input column(s) {', '.join(map(repr, missing[:20]))} the model was "
                "trained with."
            )
        row_bytes = sum(int(np.prod(shape)) * 4 for shape in preprocessing.input_shapes.values())
        rows = chunk_rows(row_bytes)
        return iter_frames(path, names, as_text, rows), parquet.metadata.num_rows


def rows_frame(payload: dict[str, Any], names: list[str], as_text: set[str]) -> pd.DataFrame:
    """``{"columns": {name: [values]}}`` (checked by the web side) as a frame read like a dataset:
    text columns as Python strings (missing stays missing), the others as numbers (missing NaN)."""
    columns = payload["columns"]
    frame = {}
    for name in names:
        values = columns[name]
        if name in as_text:
            frame[name] = pd.Series([None if v is None else str(v) for v in values], dtype=object)
        else:
            frame[name] = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").astype(np.float64)
    return pd.DataFrame(frame)


def custom_objects(namespace: dict[str, Any], bindings: dict[str, Any]) -> dict[str, Any]:
    """What the Architecture code defined (classes and functions, not modules nor the pre-bound
    names): Keras resolves custom layers and functions of a saved model by these names."""
    return {
        name: value
        for name, value in namespace.items()
        if not name.startswith("__")
        and name not in bindings
        and not isinstance(value, types.ModuleType)
        and (isinstance(value, type) or callable(value))
    }
