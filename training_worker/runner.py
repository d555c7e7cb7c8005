"""The runner: one training session's life-cycle, in its own sandboxed process.

``python -m training_worker.runner <workdir>``, started by the supervising task. The only place
user code executes; it never imports Django and sees nothing but its work dir.

The contract with the parent:

- reads ``<workdir>/job.json``; writes nothing outside ``<workdir>`` (outputs in ``output/``);
- writes events (``training_worker.events``, one JSON object per line) to the file descriptor
  named by ``$DLS_EVENT_FD`` (default 3), never to stdout: stdout and stderr are the user's logs;
- reads commands from stdin, one per line: ``interrupt`` stops training at the end of the current
  batch, then the model is evaluated and saved (status ``interrupted``). EOF on stdin means the
  parent died: the runner exits at once with code 3 (unless it is already finishing);
- phases, each announced by a ``status`` event: preprocessing, build_model, compile_model, fit,
  evaluate, predict, save; then exactly one ``done`` event and exit code 0, whatever happened to
  the user's code. A failure of the platform itself still ends in a ``done`` (phase ``runner``).

Regression targets are rescaled by default (``training.target_rescaling``, see preprocessing):
the model is fit on the scaled target, and every metric, the final metrics and ``predictions.csv``
are in the target's own units. Keras' ``loss`` in the epoch events stays on the scaled target.

The platform's own import of TensorFlow runs with fd 2 pointed at a temporary file: its native
start-up lines (absl, oneDNN) ignore every log setting and would look like the user's problem.

Exit codes: 0 after a done event, 2 when the event pipe is missing, 3 when stdin closed early.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training_worker.arrays import DEFAULT_MEMMAP_BYTES, ArrayStore, is_memory_mapped
from training_worker.dataset_files import release_freed_memory
from training_worker.defaults import output_name
from training_worker.devices import Devices
from training_worker.devices import configure as configure_devices
from training_worker.events import EVENT_FD, EVENT_FD_VARIABLE, Status, clean_values, encode_event
from training_worker.metrics import (
    DEFAULT_METRICS,
    class_probabilities,
    greater_is_better,
    metric_names,
    outputs_by_name,
    predicted_classes,
)
from training_worker.model_graph import MODEL_GRAPH_FILE, describe_model
from training_worker.preprocessing import (
    TARGET_RESCALINGS,
    Preprocessing,
    PreprocessingError,
    check_image_folder,
    drop_missing_target,
    read_dataset,
    split_positions,
)
from training_worker.provenance import PROVENANCE_FILE, describe_environment
from training_worker.usercode import (
    UserCodeError,
    call_user_function,
    check_output_layer,
    check_output_layers,
    compile_tab,
    describe_exception,
    execute_tab,
    user_function,
)

EXIT_PARENT_GONE = 3
EXIT_NO_EVENT_PIPE = 2
OUTPUT_DIR = "output"
ARTIFACTS = {
    "model": f"{OUTPUT_DIR}/model.keras",
    "preprocessing": f"{OUTPUT_DIR}/preprocessing.joblib",
    "predictions": f"{OUTPUT_DIR}/predictions.csv",
    # A folder of TensorBoard event files (runs train/ and test/), written epoch by epoch during fit.
    "tensorboard": f"{OUTPUT_DIR}/tensorboard",
}
SAVED_ARTIFACTS = ("model", "preprocessing", "predictions")  # written by _save, through .partial
PREPROCESSING_DESCRIPTION = f"{OUTPUT_DIR}/preprocessing.json"
# The last epoch's model when the kept one is an earlier epoch: where a continued session starts.
LAST_MODEL = f"{OUTPUT_DIR}/last.keras"
# Preprocessed arrays too big for RAM, memory-mapped (training_worker.arrays); removed after the run.
ARRAYS_DIR = ".arrays"
MAX_SUMMARY_CHARS = 200_000  # keeps the model event well under events.MAX_EVENT_BYTES


class EventWriter:
    """Writes whole event lines to the event pipe; a vanished reader means the parent is gone."""

    def __init__(self, fd: int) -> None:
        os.fstat(fd)  # raises OSError now, rather than at the first event, if the pipe is missing
        os.set_inheritable(fd, False)  # processes the user's code starts must not hold the pipe open
        self.fd = fd
        self.lock = threading.Lock()

    def emit(self, event: dict[str, Any]) -> None:
        data = memoryview(encode_event(event))
        with self.lock:
            try:
                while data:  # a pipe write can be partial for lines longer than PIPE_BUF
                    data = data[os.write(self.fd, data) :]
            except BrokenPipeError:
                os._exit(EXIT_PARENT_GONE)


def watch_commands(commands: Any, interrupt: threading.Event, finishing: threading.Event) -> None:
    """Daemon thread: ``interrupt`` lines set the flag; EOF means the parent died."""
    for line in commands:
        command = line.strip().decode(errors="replace")
        if command == "interrupt":
            interrupt.set()
        elif command:
            print(f"runner: ignored unknown command {command!r}", file=sys.stderr)
    if not finishing.is_set():
        os._exit(EXIT_PARENT_GONE)


@dataclass
class Split:
    """One side of the train/test split: model inputs, target in its own units, and the target columns.

    ``y`` is what the metrics compare against; ``model.fit`` gets ``Preprocessing.scale_target(y)``.
    """

    inputs: dict[str, np.ndarray]
    y: np.ndarray | dict[str, np.ndarray]  # a dict by target (output name) for a multi-output model
    frame: pd.DataFrame

    @property
    def model_inputs(self) -> Any:
        """The array itself for a one-input model, else a dict keyed by input name (Keras matches names)."""
        return self.inputs[next(iter(self.inputs))] if len(self.inputs) == 1 else dict(self.inputs)


class Runner:
    """One session's life-cycle; :meth:`run` returns the ``done`` event."""

    def __init__(
        self,
        workdir: Path,
        job: dict[str, Any],
        emit: Callable[[dict[str, Any]], None],
        interrupt: threading.Event,
    ) -> None:
        self.workdir = workdir
        self.job = job
        self.emit = emit
        self.interrupt = interrupt
        self.prediction_type: str = job["prediction_type"]
        self.target: str = job["target"]
        # Every target, the first being ``target``; 2+ make a multi-output model (one output each).
        self.targets: list[dict[str, Any]] = job.get("targets") or [
            {"name": self.target, "prediction_type": self.prediction_type, "classes": job.get("classes")}
        ]
        self.multi_output = len(self.targets) > 1
        self.seed = int(job.get("seed", 1337))
        # A dry run (the Validate button): preprocessing on a sample, build, compile, sequences; no fit.
        self.validate_only = bool(job.get("validate"))
        # Continuing an earlier session (standard mode): {model, best_model, epochs_done, kept}.
        self.resume: dict[str, Any] | None = job.get("resume")
        self.resumed: tuple[int, float | None, list] | None = None  # its kept epoch, value, weights
        self.keep_best: Any = None
        self.partial_dir = workdir / OUTPUT_DIR / ".partial"

    def run(self) -> dict[str, Any]:
        self.final_metrics: dict[str, Any] = {}
        try:
            interrupted = self._life_cycle()
        except UserCodeError as exc:
            return {
                "type": "done",
                "status": Status.FAILED.value,
                "final_metrics": clean_values(self.final_metrics),  # set when only predict or save failed
                "error": exc.to_error(),
                "artifacts": {},
            }
        finally:
            # Cleanup always runs: a failed session leaves no half-written model behind, and the
            # memory-mapped arrays (as big as the dataset) do not outlive the run.
            shutil.rmtree(self.partial_dir, ignore_errors=True)
            shutil.rmtree(self.workdir / ARRAYS_DIR, ignore_errors=True)
        return {
            "type": "done",
            "status": (Status.INTERRUPTED if interrupted else Status.SUCCEEDED).value,
            "final_metrics": clean_values(self.final_metrics),
            "error": None,
            "artifacts": {} if self.validate_only else self._artifacts(),
        }

    def _artifacts(self) -> dict[str, str]:
        last = {"last_model": LAST_MODEL} if (self.workdir / LAST_MODEL).is_file() else {}
        return dict(ARTIFACTS) | last

    def phase(self, name: str) -> contextlib.AbstractContextManager:
        what, expected = PHASE_FAILURES.get(name, (f"The {name} step raised", ""))
        return announced_phase(self.emit, name, what, expected)

    def _life_cycle(self) -> bool:
        """All phases; returns whether training was interrupted."""
        settings = training_settings(self.job.get("training") or {})
        training_code = None
        if settings.advanced:  # compiled now: a syntax error is reported before the data is read
            training_code = compile_tab(settings.code, "training", "build_sequence")
        with self.phase("preprocessing"):
            preprocessing, train, test = self._prepare_data()
            release_freed_memory()  # the dataset read is gone; keep its pages out of training's peak
        with self.phase("build_model"):
            keras, namespace, model = self._build_model(preprocessing)
        self.emit(_model_event(model, preprocessing, self._n_classes(preprocessing)))
        with self.phase("compile_model"):
            model = self._compile_model(keras, namespace, model)

        from training_worker.sequences import fit_arguments, predict  # imports Keras

        callbacks, fit_targets = self._callbacks(preprocessing, train, test, settings)
        if training_code is not None:
            with self.phase("build_sequence"):
                fit_model, train_sequence, validation_sequence = self._sequences(
                    training_code, keras, preprocessing, (train, fit_targets), test
                )
        if self.validate_only:  # a dry run: the code was built, compiled and called up to training
            return False
        with self.phase("fit"):
            if self.interrupt.is_set():  # interrupted before training: keep the model as built
                pass
            elif training_code is None:
                model.fit(
                    **fit_arguments(train.model_inputs, fit_targets, settings.batch_size, self.seed),
                    epochs=settings.epochs,
                    initial_epoch=int((self.resume or {}).get("epochs_done", 0)),
                    callbacks=callbacks,
                    verbose=0,
                )
            else:
                call_user_function(fit_model, (model, train_sequence, validation_sequence, callbacks), "fit")
        interrupted = self.interrupt.is_set()

        with self.phase("evaluate"):
            self.final_metrics = callbacks[0].evaluate(model)
        with self.phase("predict"):
            output = predict(model, test.model_inputs, settings.batch_size)
            if self.multi_output:
                outputs = outputs_by_name(list(model.output_names), output)
                self._write_multi_output_predictions(test.frame, outputs, preprocessing)
            else:
                self._write_predictions(test.frame, output, preprocessing)
        with self.phase("save"):
            self._save(model, preprocessing)
        return interrupted

    def _sequences(
        self,
        training_code: Any,
        keras: Any,
        preprocessing: Preprocessing,
        train: tuple[Split, Any],
        test: Split,
    ) -> tuple[Callable, Any, Any]:
        """Advanced mode: the Training tab's fit_model and the sequences its build_sequence returns."""
        from training_worker.sequences import ArraySequence

        def builder(inputs: Any, y: Any, shuffle: bool) -> Callable[[int], Any]:
            def build(batch_size: int) -> Any:
                return ArraySequence(
                    inputs,
                    y,
                    int(batch_size),
                    shuffle=shuffle,
                    seed=self.seed,
                    names=preprocessing.input_names,
                )

            return build

        namespace = execute_tab(training_code, "training", "build_sequence", self._bindings(keras))
        build_sequence = user_function(
            namespace,
            "build_sequence",
            "(build_train_sequence_with_batch_size, build_validation_sequence_with_batch_size)",
            "training",
            "build_sequence",
        )
        fit_model = user_function(
            namespace,
            "fit_model",
            "(model, train_sequence, validation_sequence, base_callbacks)",
            "training",
            "fit",
        )
        split, fit_targets = train
        built = call_user_function(
            build_sequence,
            (
                builder(split.model_inputs, fit_targets, True),
                builder(test.model_inputs, self._fit_targets(preprocessing, test), False),
            ),
            "build_sequence",
            expected="build_sequence(...) must return (train_sequence, validation_sequence).",
        )
        return (fit_model, *_sequence_pair(built, build_sequence))

    def _bindings(self, keras: Any) -> dict[str, Any]:
        """What every code tab finds bound: keras, np and the user API (user_api's names)."""
        from training_worker import user_api

        return {"keras": keras, "np": np, **user_api.bindings()}

    def _configure_user_api(self, preprocessing: Preprocessing) -> None:
        from training_worker import user_api

        metric = self._monitor(preprocessing)
        variables = dict(self.job.get("variables") or {})
        variables |= {
            "DKU_MODEL_METRIC": metric,
            "DKU_MODEL_METRIC_GREATER_IS_BETTER": greater_is_better(metric),
        }
        user_api.configure(
            user_api.Context(
                variables=variables,
                trained_models=list(self.job.get("trained_models") or []),
                analysis_id=self.job.get("analysis_id"),
                mltask_id=self.job.get("mltask_id"),
                workdir=str(self.workdir),
            )
        )
        user_api.install_legacy_methods()

    def _monitor(self, preprocessing: Preprocessing) -> str:
        """The optimization metric as the epoch logs name it: "Test ROC AUC", "Test R2 Score (price)".

        "Custom Score" only while the Metrics settings turn it on (of the first target when multi-output).
        """
        from training_worker.metrics import custom_score_enabled

        first = preprocessing.targets[0]
        metric = self.job.get("metric")
        custom = custom_score_enabled(self.job.get("training"))
        if metric not in metric_names(first.prediction_type, with_custom_score=custom):
            metric = DEFAULT_METRICS[first.prediction_type]
        return f"Test {metric}" + (f" ({first.target})" if self.multi_output else "")

    def _fit_targets(self, preprocessing: Preprocessing, split: Split) -> Any:
        """What Keras receives as y for a split: each target scaled as the model is fit on it."""
        if not self.multi_output:
            return preprocessing.scale_target(split.y)
        return {
            output_name(p.target): p.scale_target(split.y[output_name(p.target)])
            for p in preprocessing.targets
        }

    def _callbacks(
        self, preprocessing: Preprocessing, train: Split, test: Split, settings: TrainingSettings
    ) -> tuple[list, Any]:
        """The base callbacks (metrics first) and what ``fit`` gets as y: targets scaled for training."""
        import keras

        from training_worker.callbacks import (
            KeepBestCallback,
            OutputHead,
            base_callbacks,
            multi_output_callbacks,
            training_tab_score,
        )  # imports Keras
        from training_worker.metrics import parse_metrics_settings

        training = self.job.get("training") or {}
        try:  # the Metrics settings: cost matrix, lift fraction, custom score (checked by the web too)
            scoring = parse_metrics_settings(training.get("metrics"))
        except ValueError as exc:
            raise UserCodeError(
                phase="fit", tab="training", message=f"{exc} Fix it in the Metrics settings."
            ) from None
        custom_score = None
        if scoring.custom_score:  # the Training tab's score(y_valid, y_pred), found before any epoch
            custom_score = training_tab_score(training.get("code") or "", self._bindings(keras))

        monitor = self._monitor(preprocessing)
        self.keep_best = KeepBestCallback(self.emit, monitor, greater_is_better(monitor), settings.keep)
        if self.resumed is not None:
            self.keep_best.resume_from(*self.resumed)
        after_metrics: list[Any] = [self.keep_best]
        if settings.early_stopping:
            after_metrics.append(
                keras.callbacks.EarlyStopping(
                    monitor=monitor,
                    mode="max" if greater_is_better(monitor) else "min",
                    patience=settings.patience,
                    min_delta=settings.min_delta,
                )
            )
        common = {
            "emit": self.emit,
            "interrupt": self.interrupt,
            "train": (train.model_inputs, train.y),
            "test": (test.model_inputs, test.y),
            "batch_size": settings.batch_size,
            "train_metrics_sample": int(self.job.get("train_metrics_sample", 10_000)),
            "seed": self.seed,
            "after_metrics": after_metrics,
            "custom_score": custom_score,
            "cost_matrix": scoring.cost_matrix,
            "lift_fraction": scoring.lift_fraction,
            "tensorboard_dir": self.workdir / ARTIFACTS["tensorboard"],
        }
        if not self.multi_output:
            callbacks = base_callbacks(
                prediction_type=self.prediction_type,
                n_classes=preprocessing.n_classes,
                to_predictions=preprocessing.output_to_predictions,
                **common,
            )
            return callbacks, self._fit_targets(preprocessing, train)
        heads = [
            OutputHead(
                p.target, output_name(p.target), p.prediction_type, p.n_classes, p.output_to_predictions
            )
            for p in preprocessing.targets
        ]
        return multi_output_callbacks(heads=heads, **common), self._fit_targets(preprocessing, train)

    def _prepare_data(self) -> tuple[Preprocessing, Split, Split]:
        job = self.job
        data_format = job["dataset"].get("format", "csv")  # job specs written before Parquet say csv
        if data_format not in ("csv", "parquet"):
            raise PreprocessingError(f"Dataset format {data_format!r} is not supported; use CSV or Parquet.")
        features = job.get("features") or []
        split = job.get("split") or {}
        if self.multi_output:
            self._check_targets(features)
        frame = read_dataset(
            str(self.workdir / job["dataset"]["path"]),
            features + self._extra_target_columns(),
            self.target,
            self.prediction_type,
            format=data_format,
            sampling=split.get("sampling"),
        )
        frame = self._drop_missing_targets(frame)
        images_dir = self._images_dir(job["dataset"])
        check_image_folder(features, images_dir)
        # Each side: the frame it comes from, its row positions there (None: every row), its images.
        if split.get("mode", "random") == "explicit":
            test_spec = self.job.get("test_dataset") or {}
            test_frame = self._read_test_dataset(features)
            check_image_folder(features, self._images_dir(test_spec))
            train_rows = None
            sides = {
                "train": (frame, None, images_dir),
                "test": (test_frame, None, self._images_dir(test_spec)),
            }
        else:
            train_rows, test_rows = split_positions(frame, self.target, self.prediction_type, split)
            sides = {"train": (frame, train_rows, images_dir), "test": (frame, test_rows, images_dir)}
        rescaling = _target_rescaling(job.get("training") or {})
        preprocessing = Preprocessing.fit(
            frame,
            features,
            self.target,
            self.prediction_type,
            job.get("classes"),
            target_rescaling=rescaling,
            preprocessing_code=job.get("preprocessing_code") or "",
            rows=train_rows,
            images_dir=images_dir,
        )
        if self.multi_output:
            preprocessing.extra_targets = [
                Preprocessing.fit_target(
                    frame,
                    spec["name"],
                    spec["prediction_type"],
                    spec.get("classes"),
                    target_rescaling=rescaling,
                    rows=train_rows,
                )
                for spec in self.targets[1:]
            ]
        store = ArrayStore(self.workdir / ARRAYS_DIR, int(job.get("memmap_bytes", DEFAULT_MEMMAP_BYTES)))
        train, test = (self._split(preprocessing, store, label, *side) for label, side in sides.items())
        return preprocessing, train, test

    def _split(
        self,
        preprocessing: Preprocessing,
        store: ArrayStore,
        label: str,
        frame: pd.DataFrame,
        rows: np.ndarray | None,
        images_dir: str | None,
    ) -> Split:
        # Only the targets (and row labels) are kept for predictions.csv: the feature columns would
        # stay in memory through fit for nothing.
        targets = frame[[spec["name"] for spec in self.targets]]
        targets = targets if rows is None else targets.iloc[rows]
        y = (
            {output_name(p.target): p.encode_target(targets[p.target]) for p in preprocessing.targets}
            if self.multi_output
            else preprocessing.encode_target(targets[self.target])
        )
        inputs = preprocessing.transform_rows(frame, rows, store, images_dir, label)
        if is_memory_mapped(inputs):  # said in the log: it explains a slower epoch on huge data
            megabytes = sum(array.nbytes for array in inputs.values()) / 2**20
            print(
                f"{label.capitalize()} split: {len(targets):,} rows, inputs of {megabytes:,.0f} MB "
                f"memory-mapped (over {store.threshold / 2**20:,.0f} MB), read a batch at a time."
            )
        return Split(inputs, y, targets)

    def _images_dir(self, dataset: dict[str, Any]) -> str | None:
        """The dataset's image folder, linked into the work dir by the supervisor (None: no images)."""
        images = dataset.get("images")
        return None if images is None else str(self.workdir / images)

    def _check_targets(self, features: list[dict[str, Any]]) -> None:
        names = [spec["name"] for spec in self.targets]
        if len(set(names)) != len(names):
            raise PreprocessingError(f"The targets {names} name a column more than once; each is one output.")
        outputs: dict[str, str] = {}
        for name in names:
            other = outputs.setdefault(output_name(name), name)
            if other != name:
                raise PreprocessingError(
                    f"The targets {other!r} and {name!r} would both be the model output "
                    f"{output_name(name)!r}; keep only one of them as a target."
                )
        inputs = {f["name"] for f in features if f.get("role", "input") == "input"}
        both = [name for name in names if name in inputs]
        if both:
            raise PreprocessingError(
                f"{both[0]!r} is a target, so it cannot also be an input feature; "
                "reject it in the Features handling."
            )

    def _extra_target_columns(self) -> list[dict[str, Any]]:
        """Read like categorical features: class labels of the other targets stay text."""
        return [
            {"name": spec["name"], "type": "categorical", "role": "target"}
            for spec in self.targets[1:]
            if spec["prediction_type"] != "regression"
        ]

    def _drop_missing_targets(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows with any target missing are dropped: every output is trained on every row."""
        for spec in self.targets[1:]:
            if spec["name"] not in frame.columns:
                raise PreprocessingError(
                    f"The target column {spec['name']!r} is not in the dataset "
                    f"(columns: {list(frame.columns)[:20]}). Choose another target, or re-upload the dataset."
                )
        for spec in self.targets:
            frame = drop_missing_target(frame, spec["name"])
        return frame

    def _n_classes(self, preprocessing: Preprocessing) -> int | dict[str, int]:
        """What build_model receives: an int, or for a multi-output model a dict by target."""
        if not self.multi_output:
            return preprocessing.n_classes
        return {output_name(p.target): p.n_classes for p in preprocessing.targets}

    def _write_multi_output_predictions(
        self, test_frame: pd.DataFrame, outputs: dict[str, np.ndarray], prep: Preprocessing
    ) -> None:
        """predictions.csv: per target ``actual (t)``, ``prediction (t)`` and ``proba_<label> (t)``."""
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        table = pd.DataFrame({"row": test_frame.index.to_numpy()})
        for head in prep.targets:
            name, output = head.target, outputs[output_name(head.target)]
            table[f"actual ({name})"] = test_frame[name].to_numpy()
            if head.classes is None:
                table[f"prediction ({name})"] = head.output_to_predictions(output)
                continue
            table[f"prediction ({name})"] = np.asarray(head.classes, dtype=object)[
                predicted_classes(head.prediction_type, output)
            ]
            probabilities = class_probabilities(head.prediction_type, output)
            for position, label in enumerate(head.classes):
                table[f"proba_{label} ({name})"] = probabilities[:, position]
        table.to_csv(self.partial_dir / "predictions.csv", index=False)

    def _read_test_dataset(self, features: list[dict[str, Any]]) -> pd.DataFrame:
        """The explicit test dataset (``job["test_dataset"]``, linked into the work dir), read whole."""
        spec = self.job.get("test_dataset")
        if not spec:
            raise PreprocessingError(
                "The split uses an explicit test dataset, but the job names none; "
                "choose one in the split settings."
            )
        data_format = spec.get("format", "csv")
        if data_format not in ("csv", "parquet"):
            raise PreprocessingError(f"Dataset format {data_format!r} is not supported; use CSV or Parquet.")
        test = read_dataset(
            str(self.workdir / spec["path"]),
            features + self._extra_target_columns(),
            self.target,
            self.prediction_type,
            format=data_format,
        )
        needed = [f["name"] for f in features if f.get("role", "input") == "input"]
        missing = [name for name in needed if name not in test.columns]
        if missing:
            raise PreprocessingError(
                f"The test dataset {spec.get('name', spec['path'])!r} lacks the input column(s) "
                f"{', '.join(map(repr, missing[:20]))}; "
                "choose another test dataset, or reject those features."
            )
        return self._drop_missing_targets(test)

    def _build_model(self, preprocessing: Preprocessing) -> tuple[Any, dict[str, Any], Any]:
        # Compiled before Keras is imported: a syntax error is reported in a second, not ten.
        code = compile_tab(self.job["architecture_code"], "architecture", "build_model")
        keras, self.devices = _import_keras(self.seed, (self.job.get("training") or {}).get("runtime"))
        self._configure_user_api(preprocessing)
        namespace = execute_tab(code, "architecture", "build_model", self._bindings(keras))
        build_model = user_function(
            namespace, "build_model", "(input_shapes, n_classes)", "architecture", "build_model"
        )
        n_classes = self._n_classes(preprocessing)
        with self.devices.scope():  # several devices: the variables are mirrored on each
            if self.resume is not None:
                model = self._resumed_model(keras)
            else:
                model = call_user_function(
                    build_model,
                    (dict(preprocessing.input_shapes), n_classes),
                    "build_model",
                    expected="build_model(input_shapes, n_classes) must return a keras.Model.",
                )
        _require_model(keras, model, build_model, "return keras.Model(inputs, outputs) at its end")
        if self.multi_output:
            check_output_layers(
                model,
                [(output_name(p.target), p.prediction_type, p.n_classes) for p in preprocessing.targets],
            )
        else:
            check_output_layer(model, self.prediction_type, preprocessing.n_classes)
        return keras, namespace, model

    def _resumed_model(self, keras: Any) -> Any:
        """The earlier session's model as its last epoch left it (optimizer state included)."""
        resume = self.resume or {}
        model = keras.saving.load_model(self.workdir / resume["model"])
        kept = resume.get("kept") or {}
        if kept.get("epoch") and resume.get("best_model"):
            best = keras.saving.load_model(self.workdir / resume["best_model"], compile=False)
            self.resumed = (int(kept["epoch"]), kept.get("value"), best.get_weights())
        print(f"Continuing session {resume.get('session_id')} after its epoch {resume['epochs_done']}.")
        return model

    def _compile_model(self, keras: Any, namespace: dict[str, Any], model: Any) -> Any:
        if self.resume is not None and getattr(model, "compiled", False):
            return model  # compiled as it was saved: the optimizer goes on where it stopped
        compile_model = user_function(namespace, "compile_model", "(model)", "architecture", "compile_model")
        with self.devices.scope():  # the optimizer's variables too
            compiled = call_user_function(
                compile_model,
                (model,),
                "compile_model",
                expected="compile_model(model) must compile the model and return it.",
            )
        if compiled is not None:  # None: compiled in place
            _require_model(keras, compiled, compile_model, "return the model (or None)")
            model = compiled
        if not getattr(model, "compiled", False):
            raise UserCodeError(
                phase="compile_model",
                tab="architecture",
                line=_first_line(compile_model),
                message=(
                    "compile_model(model) returned a model that is not compiled. Call "
                    "model.compile(optimizer=..., loss=...) inside compile_model, then return the model."
                ),
            )
        return model

    def _write_predictions(self, test_frame: pd.DataFrame, output: np.ndarray, prep: Preprocessing) -> None:
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        table = pd.DataFrame(
            {"row": test_frame.index.to_numpy(), "actual": test_frame[self.target].to_numpy()}
        )
        if prep.classes is None:
            table["prediction"] = prep.output_to_predictions(output)  # in the target's units
        else:
            table["prediction"] = np.asarray(prep.classes, dtype=object)[
                predicted_classes(self.prediction_type, output)
            ]
            probabilities = class_probabilities(self.prediction_type, output)
            for position, label in enumerate(prep.classes):
                table[f"proba_{label}"] = probabilities[:, position]
        table.to_csv(self.partial_dir / "predictions.csv", index=False)

    def _save(self, model: Any, preprocessing: Preprocessing) -> None:
        import joblib

        model.save(self.partial_dir / "model.keras")
        last_weights = getattr(self.keep_best, "last_weights", None)
        if last_weights is not None:  # the kept epoch is not the last: keep the last for continuing
            kept = model.get_weights()
            model.set_weights(last_weights)
            model.save(self.partial_dir / "last.keras")
            model.set_weights(kept)
            os.replace(self.partial_dir / "last.keras", self.workdir / LAST_MODEL)
        joblib.dump(preprocessing, self.partial_dir / "preprocessing.joblib")
        description = json.dumps(preprocessing.describe(), indent=1, default=str)
        (self.partial_dir / "preprocessing.json").write_text(description)
        # For the model report: the layer graph, and the versions and devices that made the model.
        (self.partial_dir / "model_graph.json").write_text(json.dumps(describe_model(model), default=str))
        environment = describe_environment(getattr(self, "devices", None), self.seed)
        (self.partial_dir / "provenance.json").write_text(json.dumps(environment, default=str))
        saved = (*(ARTIFACTS[name] for name in SAVED_ARTIFACTS), PREPROCESSING_DESCRIPTION)
        # Files appear in output/ only once all were written: nothing half-saved is ever visible.
        for path in (*saved, MODEL_GRAPH_FILE, PROVENANCE_FILE):
            os.replace(self.partial_dir / Path(path).name, self.workdir / path)


# Phases that write the session's outputs (predictions.csv, the model): out of disk space there is
# the worker's disk or the file size limit (RUNNER_MAX_FILE_MB), not the user's code.
OUTPUT_PHASES = ("predict", "save")
DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def _disk_full_message(phase: str, exc: OSError) -> str:
    what = "Saving the model" if phase == "save" else "Writing the test set's predictions"
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    why = (
        f"a file would have been larger than the largest file a session may write ({limit / 1024**2:g} MiB)"
        if exc.errno == errno.EFBIG and limit != resource.RLIM_INFINITY
        else "the worker's disk is full"
    )
    return (
        f"{what} failed: {why} ({exc.strerror or exc}). Nothing was kept: no model or output of this "
        "session is stored. Free disk space or ask an administrator, then train again."
    )


@contextlib.contextmanager
def announced_phase(emit: Callable[[dict], None], name: str, what: str, expected: str = "") -> Iterator[None]:
    """Announce a phase; turn whatever fails inside it into a UserCodeError naming it (``what``
    failed, ``expected`` what would have been right). Shared by training and scoring runs."""
    emit({"type": "status", "status": Status.RUNNING.value, "phase": name})
    try:
        yield
    except UserCodeError:
        raise
    except PreprocessingError as exc:
        raise UserCodeError(phase=name, message=str(exc), traceback_text=traceback.format_exc()) from exc
    except (Exception, SystemExit) as exc:
        if isinstance(exc, OSError) and name in OUTPUT_PHASES and exc.errno in DISK_FULL:
            raise UserCodeError(  # the disk, not the code: say so, and that nothing was kept
                phase=name, message=_disk_full_message(name, exc), traceback_text=traceback.format_exc()
            ) from exc
        error = describe_exception(exc, name, what, expected)
        if error.tab is None:  # not the user's frames: show the whole traceback
            error.traceback_text = traceback.format_exc()
        raise error from exc


PHASE_FAILURES = {
    "preprocessing": ("Preparing the dataset failed with", ""),
    "build_model": ("Building the model failed with", ""),
    "compile_model": ("Compiling the model failed with", ""),
    "build_sequence": (
        "Building the training sequences (build_sequence) failed with",
        "build_sequence gets two functions, each taking a batch size and returning a sequence.",
    ),
    "fit": (
        "Training (model.fit) failed with",
        "The model's output, its loss and the target must agree: for this prediction type, compare "
        "compile_model's loss with the default Architecture code.",
    ),
    "evaluate": ("Evaluating the trained model failed with", ""),
    "predict": ("Predicting the test set failed with", ""),
    "save": ("Saving the model failed with", "Layers defined in your code must be serializable."),
}


def _import_keras(seed: int, runtime: dict[str, Any] | None = None) -> tuple[Any, Devices]:
    """Keras, its devices configured (before TensorFlow runs anything) and the seed set."""
    with native_stderr_silenced():
        import keras

        devices = configure_devices(runtime)
        keras.utils.set_random_seed(seed)  # before anything random in the user's code
    print(devices.describe())  # the session's console says where it trains
    return keras, devices


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Point fd 2 at a temporary file for the block; if the block raises, replay what it wrote.

    For the platform's import of TensorFlow only: its native libraries write start-up lines
    ("All log messages before absl::InitializeLog() ...", "oneDNN custom operations are on ...")
    straight to fd 2 before any log level applies, so only the descriptor itself can silence
    them. Everything after the block (the user's prints and warnings) reaches stderr as usual.
    """
    try:
        # In $TMPDIR, which the sandbox puts in the work dir; closed by the with below.
        captured = tempfile.TemporaryFile()  # noqa: SIM115
    except OSError:  # nowhere to capture: start-up noise beats not training at all
        yield
        return
    _flush_stderr()
    saved = os.dup(2)
    with captured:
        os.dup2(captured.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            _flush_stderr()  # Python-level writes made in the block belong to the captured file
            os.dup2(saved, 2)  # inheritable again, for processes the user's code starts
            os.close(saved)
            if failed:  # the native messages of a failed import are what explains it
                captured.seek(0)
                with contextlib.suppress(OSError):  # never hide the block's own exception
                    _write_all(2, captured.read())


def _flush_stderr() -> None:
    if sys.stderr is not None:
        sys.stderr.flush()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _require_model(keras: Any, value: Any, function: Callable, fix: str) -> None:
    if not isinstance(value, keras.Model):
        name = function.__name__
        raise UserCodeError(
            phase=name,
            tab="architecture",
            line=_first_line(function),
            message=f"{name} must return a keras.Model; got {type(value).__name__}. In {name}, {fix}.",
        )


def _first_line(function: Callable) -> int | None:
    """The line of the user's ``def``, for errors about what a function returned."""
    code = getattr(function, "__code__", None)
    return code.co_firstlineno if code is not None else None


def _target_rescaling(training: dict[str, Any]) -> str | None:
    """``training.target_rescaling``; None (absent) lets preprocessing apply its default."""
    rescaling = training.get("target_rescaling")
    if rescaling is not None and rescaling not in TARGET_RESCALINGS:
        raise UserCodeError(
            phase="preprocessing",
            tab="training",
            message=(
                f"Target rescaling {rescaling!r} is unknown; choose one of {list(TARGET_RESCALINGS)} "
                "in the Training tab."
            ),
        )
    return rescaling


@dataclass(frozen=True)
class TrainingSettings:
    """The Training tab: standard (epochs, batch size) or advanced (``code``: build_sequence and
    fit_model); which epoch's weights to keep; the no-code early stopping."""

    mode: str = "standard"
    epochs: int = 10
    batch_size: int = 32
    code: str = ""
    keep: str = "best"  # best (by the optimization metric) | last
    early_stopping: bool = False
    patience: int = 5
    min_delta: float = 0.0

    @property
    def advanced(self) -> bool:
        return self.mode == "advanced"


def training_settings(training: dict[str, Any]) -> TrainingSettings:
    """The Training tab's settings, checked (the web checks them too; a job may come from elsewhere)."""

    def refuse(message: str) -> UserCodeError:
        return UserCodeError(phase="fit", tab="training", message=f"{message} Fix it in the Training tab.")

    mode = training.get("mode", "standard")
    if mode not in ("standard", "advanced"):
        raise refuse(f"Training mode {mode!r} is unknown; use standard or advanced.")
    epochs, batch_size = training.get("epochs", 10), training.get("batch_size", 32)
    if not (isinstance(epochs, int) and epochs >= 1 and isinstance(batch_size, int) and batch_size >= 1):
        raise refuse(
            f"Epochs and batch size must be whole numbers of at least 1; got epochs={epochs!r}, "
            f"batch_size={batch_size!r}."
        )
    keep = training.get("keep", "best")
    if keep not in ("best", "last"):
        raise refuse(f'keep must be "best" or "last"; got {keep!r}.')
    stopping = training.get("early_stopping") or {}
    patience, min_delta = stopping.get("patience", 5), stopping.get("min_delta", 0.0)
    if not (
        isinstance(patience, int) and patience >= 0 and isinstance(min_delta, int | float) and min_delta >= 0
    ):
        raise refuse(
            "Early stopping needs a patience of 0 or more epochs and a min delta of 0 or more; "
            f"got {stopping!r}."
        )
    code = training.get("code") or ""
    if mode == "advanced" and not code.strip():
        raise refuse(
            "Advanced mode runs the Training tab's code, which is empty; write build_sequence and fit_model."
        )
    return TrainingSettings(
        mode, epochs, batch_size, code, keep, bool(stopping.get("enabled")), patience, float(min_delta)
    )


def _sequence_pair(built: Any, function: Callable) -> tuple[Any, Any]:
    if isinstance(built, tuple | list) and len(built) == 2:
        return built[0], built[1]
    raise UserCodeError(
        phase="build_sequence",
        tab="training",
        line=_first_line(function),
        message=(
            f"build_sequence returned {type(built).__name__}; it must return a pair "
            "(train_sequence, validation_sequence), e.g. `return train_sequence, validation_sequence`."
        ),
    )


def _model_event(model: Any, preprocessing: Preprocessing, n_classes: Any) -> dict[str, Any]:
    lines: list[str] = []
    try:
        model.summary(print_fn=lambda text, **_: lines.append(text))
        params = int(model.count_params())
    except Exception as exc:  # e.g. a subclassed model, only built by its first batch
        lines, params = [f"(no summary before training: {exc})"], 0
    summary = "\n".join(lines)
    if len(summary) > MAX_SUMMARY_CHARS:
        summary = summary[:MAX_SUMMARY_CHARS] + "\n... (summary truncated)"
    return {
        "type": "model",
        "summary": summary,
        "params": params,
        "input_shapes": {name: list(shape) for name, shape in preprocessing.input_shapes.items()},
        "n_classes": n_classes,
        # Integer inputs only (categorical index, text sequence): their Embedding's input_dim.
        "vocabularies": preprocessing.vocabularies,
    }


def _platform_failure(exc: BaseException) -> dict[str, Any]:
    return {
        "type": "done",
        "status": Status.FAILED.value,
        "final_metrics": {},
        "error": {
            "phase": "runner",
            "tab": None,
            "line": None,
            "message": (
                f"The training platform failed ({type(exc).__name__}: {exc}). This is not a problem in "
                "your code; train again, and report it if it happens again."
            ),
            "traceback": "".join(traceback.format_exception(exc)),
        },
        "artifacts": {},
    }


def wait_warm(commands: Any) -> None:
    """A warm runner: import what every session needs (TensorFlow takes seconds), then wait for
    ``start {"environment": {...}}`` (the supervisor has written job.json; the environment names the
    session's GPUs). Anything else, or EOF: exit. Importing does not look for devices, so
    ``CUDA_VISIBLE_DEVICES`` set here still decides which GPUs TensorFlow finds."""
    with native_stderr_silenced():
        import keras  # noqa: F401
        import sklearn.metrics  # noqa: F401

        from training_worker import callbacks, sequences, user_api  # noqa: F401
    word, _, rest = commands.readline().strip().partition(b" ")
    if word != b"start":
        os._exit(EXIT_PARENT_GONE)
    try:
        environment = json.loads(rest or b"{}").get("environment") or {}
    except (ValueError, AttributeError):
        os._exit(EXIT_PARENT_GONE)
    for name, value in environment.items():
        if name in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"):
            os.environ[name] = str(value)


def main(argv: list[str]) -> None:
    warm = argv[1:] == ["--warm"]
    if len(argv) != 1 and not warm:
        print("usage: python -m training_worker.runner <workdir> [--warm]", file=sys.stderr)
        sys.exit(EXIT_NO_EVENT_PIPE)
    try:
        writer = EventWriter(int(os.environ.get(EVENT_FD_VARIABLE, EVENT_FD)))
    except (OSError, ValueError) as exc:
        print(f"runner: no event pipe ({exc}); it is started by the supervising task", file=sys.stderr)
        sys.exit(EXIT_NO_EVENT_PIPE)
    # Keras' and TensorFlow's defaults for a headless worker, unless the parent chose otherwise.
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if sys.stdout is not None:
        sys.stdout.reconfigure(line_buffering=True)  # user prints reach the logs as they happen

    interrupt, finishing = threading.Event(), threading.Event()
    commands = sys.stdin.buffer if sys.stdin is not None else iter(())
    if warm:
        wait_warm(commands)
    threading.Thread(
        target=watch_commands, args=(commands, interrupt, finishing), name="commands", daemon=True
    ).start()
    sys.stdin = open(os.devnull)  # user code reading stdin must not swallow our commands  # noqa: SIM115

    try:
        workdir = Path(argv[0]).resolve()
        os.chdir(workdir)  # the user's relative paths land in the work dir, the only writable place
        job = json.loads((workdir / "job.json").read_text())
        if job.get("mode") == "score":  # a trained model applied to new rows (training_worker.scoring)
            from training_worker.scoring import score

            done = score(workdir, job, writer.emit)
        else:
            done = Runner(workdir, job, writer.emit, interrupt).run()
    except BaseException as exc:  # the parent must get a done event whatever happened
        traceback.print_exc()
        done = _platform_failure(exc)
    finishing.set()
    writer.emit(done)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skips interpreter teardown, which can hang on TensorFlow's threads; everything is written.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
