"""What user code may call: ``from training_worker.user_api import get_variable``, or the same names
pre-bound in every code tab.

- ``get_variable(name)``: ``DKU_MODEL_METRIC`` (the optimization metric as the epoch logs name it,
  e.g. ``"Test ROC AUC"``), ``DKU_MODEL_METRIC_GREATER_IS_BETTER`` (bool), and the project's
  variables.
- ``DataAugmentationSequence(sequence, input_name, augmentator, n_augmentation)``: each batch of
  ``sequence`` with every row repeated ``n_augmentation`` times and the input ``input_name`` of each
  copy randomly transformed by ``augmentator.random_transform(x, seed=None)`` (any object with that
  method), so batches become ``n_augmentation`` times larger.
- ``ImageDataGenerator``: the Keras 2 augmentator (rotation, shifts, flips, zoom, shear, brightness
  ...), which Keras 3 only keeps in its legacy package.
- ``get_keras_model_from_trained_model(session_id=None, analysis_id=None, mltask_id=None)`` and
  ``get_keras_model_location_from_trained_model(...)``: a model trained earlier (the latest of
  this ML task by default), among those the user who started the session may read; the supervisor
  links them into the work dir (the sandbox sees nothing else).
- Keras 2's ``model.fit_generator``, ``evaluate_generator`` and ``predict_generator`` keep working
  (:func:`install_legacy_methods`).

The runner calls :func:`configure` before any user code runs. Imports Keras: only the runner
imports this module, once it has imported Keras (never the web process).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras.src.legacy.preprocessing.image import ImageDataGenerator  # Keras 3 keeps it only there

# Keras 2 generator-method keywords that Keras 3's fit/evaluate/predict no longer take (a
# PyDataset carries its own workers and queue size); dropped rather than failing old code.
LEGACY_LOADER_KEYWORDS = ("max_queue_size", "workers", "use_multiprocessing")


@dataclass
class Context:
    """The session as user code sees it."""

    variables: dict[str, Any] = field(default_factory=dict)
    # Models the session's user may read: {session_id, analysis_id, mltask_id, path (in the work dir)}.
    trained_models: list[dict[str, Any]] = field(default_factory=list)
    analysis_id: int | None = None
    mltask_id: int | None = None
    workdir: str = "."


_context = Context()


def configure(context: Context) -> None:
    global _context
    _context = context


class UserApiError(LookupError):
    """A helper was asked for something that does not exist; the message lists what does."""


def get_variable(name: str) -> Any:
    """A project variable, or DKU_MODEL_METRIC / DKU_MODEL_METRIC_GREATER_IS_BETTER."""
    if name in _context.variables:
        return _context.variables[name]
    known = ", ".join(sorted(_context.variables)) or "none"
    raise UserApiError(f"No variable {name!r}. Known variables: {known}. Project owners set variables.")


def _find_trained_model(
    session_id: int | None, analysis_id: int | None, mltask_id: int | None
) -> dict[str, Any]:
    models = _context.trained_models
    if session_id is not None:
        chosen = [m for m in models if m["session_id"] == session_id]
        if not chosen:
            raise UserApiError(
                f"Session {session_id} has no trained model you may read. "
                f"Sessions with one: {sorted(m['session_id'] for m in models)[-20:] or 'none'}."
            )
        return chosen[0]
    if mltask_id is None and analysis_id is None:
        mltask_id = _context.mltask_id
    chosen = [
        m
        for m in models
        if (mltask_id is None or m["mltask_id"] == mltask_id)
        and (analysis_id is None or m["analysis_id"] == analysis_id)
    ]
    if not chosen:
        where = f"ML task {mltask_id}" if mltask_id is not None else f"analysis {analysis_id}"
        raise UserApiError(f"No trained model in {where}: train a session there first (or pass session_id=).")
    return max(chosen, key=lambda m: m["session_id"])  # the latest


def get_keras_model_location_from_trained_model(
    session_id: int | None = None, analysis_id: int | None = None, mltask_id: int | None = None
) -> str:
    """The path of a trained model's ``.keras`` file (the latest of this ML task by default)."""
    found = _find_trained_model(session_id, analysis_id, mltask_id)
    return os.path.join(_context.workdir, found["path"])


def get_keras_model_from_trained_model(
    session_id: int | None = None, analysis_id: int | None = None, mltask_id: int | None = None
) -> Any:
    """A trained model, loaded with its weights (e.g. to transfer them into a new model)."""
    location = get_keras_model_location_from_trained_model(session_id, analysis_id, mltask_id)
    return keras.saving.load_model(location, compile=False)


def _repeat(value: Any, times: int) -> Any:
    if isinstance(value, dict):
        return {name: np.repeat(np.asarray(array), times, axis=0) for name, array in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(np.repeat(np.asarray(array), times, axis=0) for array in value)
    return np.repeat(np.asarray(value), times, axis=0)


class DataAugmentationSequence(keras.utils.PyDataset):
    """Batches of ``sequence`` with each row repeated ``n_augmentation`` times and the input
    ``input_name`` of every copy passed through ``augmentator.random_transform(x, seed=...)``."""

    def __init__(
        self,
        sequence: Any,
        input_name: str,
        augmentator: Any,
        n_augmentation: int = 1,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if not hasattr(augmentator, "random_transform"):
            raise TypeError(
                f"The augmentator ({type(augmentator).__name__}) has no random_transform(x, seed=None) "
                "method; use ImageDataGenerator(...) or an object with one."
            )
        if int(n_augmentation) < 1:
            raise ValueError(f"n_augmentation must be at least 1; got {n_augmentation}")
        self.sequence, self.input_name = sequence, input_name
        self.augmentator, self.n_augmentation = augmentator, int(n_augmentation)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.sequence)

    def __getitem__(self, index: int) -> tuple:
        batch = self.sequence[index]
        batch = batch if isinstance(batch, tuple) else (batch,)
        x = _repeat(batch[0], self.n_augmentation)
        images = self._images(x)
        for row in range(len(images)):
            seed = int(self.rng.integers(2**31 - 1))
            images[row] = self.augmentator.random_transform(images[row], seed=seed)
        return (x, *(_repeat(part, self.n_augmentation) for part in batch[1:]))

    def _images(self, x: Any) -> np.ndarray:
        if isinstance(x, dict):
            if self.input_name not in x:
                raise KeyError(
                    f"DataAugmentationSequence: no input {self.input_name!r} in the batch; "
                    f"the inputs are {sorted(x)}."
                )
            return x[self.input_name]
        names = getattr(self.sequence, "input_names", None)
        if names and self.input_name not in names:
            raise KeyError(
                f"DataAugmentationSequence: no input {self.input_name!r}; the model's input is {names[0]!r}."
            )
        return x  # a one-input model's batch is that input's array

    def on_epoch_end(self) -> None:
        if hasattr(self.sequence, "on_epoch_end"):
            self.sequence.on_epoch_end()


def install_legacy_methods() -> None:
    """``Model.fit_generator`` & co. as Keras 2 had them, forwarding to fit/evaluate/predict."""

    def forward(method: str):
        def legacy(self: Any, generator: Any, *args: Any, **kwargs: Any) -> Any:
            for keyword in LEGACY_LOADER_KEYWORDS:
                kwargs.pop(keyword, None)
            return getattr(self, method)(generator, *args, **kwargs)

        legacy.__name__ = f"{method}_generator"
        legacy.__doc__ = f"Keras 2's {method}_generator: Keras 3's {method} takes generators and PyDatasets."
        return legacy

    for method in ("fit", "evaluate", "predict"):
        if not hasattr(keras.Model, f"{method}_generator"):
            setattr(keras.Model, f"{method}_generator", forward(method))


def bindings() -> dict[str, Any]:
    """The names pre-bound in the code tabs."""
    return {
        "get_variable": get_variable,
        "DataAugmentationSequence": DataAugmentationSequence,
        "ImageDataGenerator": ImageDataGenerator,
        "get_keras_model_from_trained_model": get_keras_model_from_trained_model,
        "get_keras_model_location_from_trained_model": get_keras_model_location_from_trained_model,
    }
