"""Defaults for a new ML task: Architecture code, training settings, feature handling.

The web process imports this to pre-fill the design, so it must not import TensorFlow or Keras:
the Architecture code is plain text that only the runner executes.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from training_worker.metrics import default_metrics_settings

_OUTPUT_LAYERS = {
    "regression": ('keras.layers.Dense(1, name="prediction")(x)', "mse"),
    "binary": ('keras.layers.Dense(1, activation="sigmoid", name="prediction")(x)', "binary_crossentropy"),
    "multiclass": (
        'keras.layers.Dense(n_classes, activation="softmax", name="prediction")(x)',
        "sparse_categorical_crossentropy",
    ),
}

_METRICS = {"regression": '["mae"]', "binary": '["accuracy"]', "multiclass": '["accuracy"]'}

_ARCHITECTURE_TEMPLATE = '''\
def build_model(input_shapes, n_classes):
    """Return a Keras model. input_shapes maps each input name (e.g. "main") to its shape."""
    # One keras.Input per preprocessing input; features go to "main" unless routed elsewhere.
    inputs = [keras.Input(shape=shape, name=name) for name, shape in input_shapes.items()]
    # Images (height, width, channels) are flattened; a convolution would suit them better.
    flat = [keras.layers.Flatten()(i) if len(i.shape) > 2 else i for i in inputs]
    x = flat[0] if len(flat) == 1 else keras.layers.Concatenate()(flat)
    x = keras.layers.Dense(64, activation="relu")(x)
    x = keras.layers.Dropout(0.2)(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = {output}
    return keras.Model(inputs=inputs[0] if len(inputs) == 1 else inputs, outputs=outputs)


def compile_model(model):
    """Compile the model built above and return it."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.003),
        loss="{loss}",
        metrics={metrics},
    )
    return model
'''


def default_architecture_code(prediction_type: str) -> str:
    """Architecture tab code that trains a reasonable dense network for ``prediction_type``."""
    if prediction_type not in _OUTPUT_LAYERS:
        raise ValueError(
            f"unknown prediction type {prediction_type!r}; expected one of {sorted(_OUTPUT_LAYERS)}"
        )
    output, loss = _OUTPUT_LAYERS[prediction_type]
    return _ARCHITECTURE_TEMPLATE.format(output=output, loss=loss, metrics=_METRICS[prediction_type])


_MULTI_OUTPUT_TEMPLATE = '''\
# One output per target, named after it (spaces and the like made "_"): {{output name: prediction type}}.
TARGETS = {targets}
LOSSES = {{
    "regression": "mse",
    "binary": "binary_crossentropy",
    "multiclass": "sparse_categorical_crossentropy",
}}
METRICS = {{"regression": ["mae"], "binary": ["accuracy"], "multiclass": ["accuracy"]}}


def output_layer(target, prediction_type, n_classes):
    """The last layer of one target's head, named after the target."""
    if prediction_type == "regression":
        return keras.layers.Dense(1, name=target)
    if prediction_type == "binary":
        return keras.layers.Dense(1, activation="sigmoid", name=target)
    return keras.layers.Dense(n_classes[target], activation="softmax", name=target)


def build_model(input_shapes, n_classes):
    """Return a Keras model with one output per target.

    input_shapes maps each input name (e.g. "main") to its shape; n_classes maps each output name
    to its target's number of classes (1 for regression).
    """
    inputs = [keras.Input(shape=shape, name=name) for name, shape in input_shapes.items()]
    # Images (height, width, channels) are flattened; a convolution would suit them better.
    flat = [keras.layers.Flatten()(i) if len(i.shape) > 2 else i for i in inputs]
    x = flat[0] if len(flat) == 1 else keras.layers.Concatenate()(flat)
    # The shared trunk...
    x = keras.layers.Dense(64, activation="relu")(x)
    x = keras.layers.Dropout(0.2)(x)
    # ...and one head per target.
    outputs = {{}}
    for target, prediction_type in TARGETS.items():
        head = keras.layers.Dense(32, activation="relu")(x)
        outputs[target] = output_layer(target, prediction_type, n_classes)(head)
    return keras.Model(inputs=inputs[0] if len(inputs) == 1 else inputs, outputs=outputs)


def compile_model(model):
    """Compile the model built above, with a loss per output, and return it."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.003),
        loss={{target: LOSSES[prediction_type] for target, prediction_type in TARGETS.items()}},
        loss_weights={{target: 1.0 for target in TARGETS}},
        metrics={{target: METRICS[prediction_type] for target, prediction_type in TARGETS.items()}},
    )
    return model
'''


def output_name(target: str) -> str:
    """The name of a target's model output: the target, with what TensorFlow refuses in a layer
    name (spaces, ...) replaced by ``_``: "mean radius" -> "mean_radius"."""
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", target)
    return name if name and name[0].isalnum() else f"output_{name}"


def default_multi_output_code(targets: dict[str, str]) -> str:
    """Architecture code for a multi-output model: a shared trunk, one head per target.

    ``targets`` maps each target (the name of its output) to its prediction type.
    """
    unknown = [t for t in targets.values() if t not in _OUTPUT_LAYERS]
    if unknown:
        raise ValueError(f"unknown prediction type {unknown[0]!r}; expected one of {sorted(_OUTPUT_LAYERS)}")
    by_output = {output_name(target): kind for target, kind in targets.items()}
    return _MULTI_OUTPUT_TEMPLATE.format(targets=repr(by_output))


# The Training tab's code in advanced mode: the standard mode, written out, for users to change.
DEFAULT_TRAINING_CODE = """\
def build_sequence(build_train_sequence_with_batch_size, build_validation_sequence_with_batch_size):
    batch_size = 32
    train_sequence = build_train_sequence_with_batch_size(batch_size)
    validation_sequence = build_validation_sequence_with_batch_size(batch_size)
    return train_sequence, validation_sequence


def fit_model(model, train_sequence, validation_sequence, base_callbacks):
    epochs = 10
    # base_callbacks compute the Train/Test metrics into the logs (get_variable("DKU_MODEL_METRIC")
    # names the optimization one), keep the best epoch, and make Interrupt work: keep them first.
    # verbose=0: the page shows every epoch; Keras' progress bar would only fill the console.
    model.fit(train_sequence, epochs=epochs, callbacks=base_callbacks, verbose=0)
"""


def default_training() -> dict[str, Any]:
    return {
        "mode": "standard",
        "epochs": 10,
        "batch_size": 32,
        "keep": "best",
        "early_stopping": {"enabled": False, "patience": 5, "min_delta": 0.0},
        "code": DEFAULT_TRAINING_CODE,
        # The Metrics settings: Cost Matrix Gain's matrix, Cumulative Lift's fraction, and whether the
        # Training tab's score(y_valid, y_pred) is reported as "Custom Score" (training_worker.metrics).
        "metrics": default_metrics_settings(),
        # Which GPUs (training_worker.gpus: "auto" = one if the worker has one) and whether TensorFlow
        # takes GPU memory as needed rather than all of it at start (training_worker.devices).
        "runtime": {"gpus": "auto", "memory_growth": True},
    }


DATE_COMPONENTS = ("year", "month", "day", "weekday", "hour", "timestamp")

# Per feature type, the defaults of each encoding; the first listed is the type's default encoding.
# Options of another encoding are not carried over when the encoding changes: they would not apply.
_ENCODING_HANDLING: dict[str, dict[str, dict[str, Any]]] = {
    "categorical": {
        "dummy": {"encoding": "dummy", "max_levels": 100},
        # Embeddings are for many levels: a larger default than dummy columns could afford.
        "index": {"encoding": "index", "max_levels": 1000},
    },
    "text": {
        "tfidf": {"encoding": "tfidf", "max_features": 200},
        "counts": {"encoding": "counts", "max_features": 200},
        "sequence": {"encoding": "sequence", "vocabulary_size": 10_000, "sequence_length": 100},
    },
}

_FEATURE_HANDLING: dict[str, dict[str, Any]] = {
    "numeric": {"rescaling": "standard", "missing": "mean"},
    "categorical": _ENCODING_HANDLING["categorical"]["dummy"],
    "text": _ENCODING_HANDLING["text"]["tfidf"],
    "date": {"components": list(DATE_COMPONENTS)},
    # channels: 1 grayscale, 3 RGB, 4 RGBA; scale: divide by 255 (values in [0, 1]).
    "image": {"loader": "default", "height": 32, "width": 32, "channels": 3, "scale": True},
}
IMAGE_LOADERS = ("default", "custom")

# Encodings that give integer ids for a keras.layers.Embedding: such a feature needs a model input
# of its own, because an Embedding takes one integer input and floats cannot be mixed into it.
INTEGER_ENCODINGS = {"categorical": "index", "text": "sequence"}


def feature_encodings(column_type: str) -> tuple[str, ...]:
    """The encodings a feature of ``column_type`` accepts; empty for types without ``encoding``."""
    return tuple(_ENCODING_HANDLING.get(column_type, {}))


def default_feature_handling(column_type: str, encoding: str | None = None) -> dict[str, Any]:
    """The handling of an input feature of ``column_type`` (numeric | categorical | text | date | image).

    ``encoding`` (categorical: dummy | index; text: tfidf | counts | sequence) gives that encoding's
    defaults instead of the type's default encoding.
    """
    if column_type not in _FEATURE_HANDLING:
        raise ValueError(f"unknown column type {column_type!r}; expected one of {sorted(_FEATURE_HANDLING)}")
    if encoding is None:
        return copy.deepcopy(_FEATURE_HANDLING[column_type])
    encodings = _ENCODING_HANDLING.get(column_type, {})
    if encoding not in encodings:
        raise ValueError(
            f"unknown encoding {encoding!r} for {column_type}; expected one of {sorted(encodings) or 'none'}"
        )
    return copy.deepcopy(encodings[encoding])


def is_integer_encoded(column_type: str | None, handling: dict[str, Any] | None) -> bool:
    """Whether the feature becomes integer ids (categorical index, text sequence) for an Embedding."""
    encoding = (handling or {}).get("encoding")
    return encoding is not None and INTEGER_ENCODINGS.get(column_type or "") == encoding
