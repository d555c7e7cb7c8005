"""An ML task's design: working defaults from the dataset, and validation of edits."""

from __future__ import annotations

import re
from typing import Any

from analyses.models import Dataset, PredictionType
from training_worker.defaults import (
    DATE_COMPONENTS,
    IMAGE_LOADERS,
    default_architecture_code,
    default_feature_handling,
    default_multi_output_code,
    default_training,
    feature_encodings,
    is_integer_encoded,
    output_name,
)
from training_worker.gpus import GpuRequestError
from training_worker.gpus import parse_request as parse_gpu_request
from training_worker.metrics import DEFAULT_METRICS, parse_metrics_settings

DEFAULT_SAMPLING = {"method": "all"}
DEFAULT_SPLIT = {
    "mode": "random",
    "train_ratio": 0.8,
    "seed": 1337,
    "stratify": True,
    "sampling": DEFAULT_SAMPLING,
}
SPLIT_MODES = ("random", "explicit")
SAMPLING_METHODS = ("all", "head", "random")
MIN_SAMPLE_ROWS = 2
MAX_SAMPLE_ROWS = 1_000_000_000
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 1_000_000
MAX_CODE_CHARS = 200_000  # a code tab; far beyond any real model, short of a memory problem
FEATURE_ROLES = ("input", "reject")
FEATURE_TYPES = ("numeric", "categorical", "text", "date", "image")
TARGET_RESCALINGS = ("standard", "none")


class DesignError(ValueError):
    """An edit that cannot be saved; the message names the field and what is accepted."""


def _names(target: str | list[str] | None) -> list[str]:
    """The target column names: one name, or the list of a multi-output task."""
    if target is None:
        return []
    return [target] if isinstance(target, str) else list(target)


def default_features(dataset: Dataset, target: str | list[str]) -> list[dict]:
    """Every column but the target(s), with its type's default handling, into the input `main`."""
    targets = set(_names(target))
    features = []
    for column in dataset.columns:
        if column["name"] in targets:
            continue
        column_type = column["type"] if column["type"] in FEATURE_TYPES else "categorical"
        features.append(
            {
                "name": column["name"],
                "role": "input",
                "type": column_type,
                "handling": default_feature_handling(column_type),
                # An image is (height, width, channels): it cannot be concatenated with other columns.
                "input": image_input_name(column["name"]) if column_type == "image" else "main",
            }
        )
    return features


def check_target_names(names: list[str]) -> None:
    """Refuses a target list no model can have: none, a column twice, or two columns whose model
    outputs would share a name ("churn rate" and "churn_rate" both give the output churn_rate)."""
    if not names:
        raise DesignError(
            "targets: an ML task needs at least one target; add the new target before removing the last one."
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DesignError(
            f"targets: {', '.join(map(repr, duplicates))} appears more than once; each target is one output."
        )
    by_output: dict[str, str] = {}
    for name in names:
        output = output_name(name)
        if output in by_output:
            raise DesignError(
                f"targets: {by_output[output]!r} and {name!r} would both be the model output {output!r} "
                '(outputs are named after their target, with spaces and the like made "_"); '
                "keep only one of them as a target."
            )
        by_output[output] = name


def retarget_features(
    features: list[dict], dataset: Dataset, old_targets: list[str], new_targets: list[str]
) -> list[dict]:
    """The features once the targets changed, as creation would have made them: a new target
    leaves the features, a removed target comes back as an input with its type's default handling
    (unless ``features`` already has it), in the dataset's column order."""
    kept = [f for f in features if f["name"] not in new_targets]
    present = {f["name"] for f in kept}
    restored = [
        f
        for f in default_features(dataset, new_targets)
        if f["name"] in old_targets and f["name"] not in present
    ]
    position = {c["name"]: i for i, c in enumerate(dataset.columns)}
    for feature in restored:
        # Before the first feature that comes later in the dataset; the user's order is kept.
        index = next(
            (i for i, f in enumerate(kept) if position.get(f["name"], 0) > position[feature["name"]]),
            len(kept),
        )
        kept.insert(index, feature)
    return kept


def default_design(
    dataset: Dataset, target: str, prediction_type: str, targets: list[dict] | None = None
) -> dict[str, Any]:
    """``targets`` ([{name, prediction_type}, ...], 2+) makes a multi-output design."""
    multi = targets is not None and len(targets) > 1
    return {
        "features": default_features(dataset, [t["name"] for t in targets] if multi else target),
        "split": {**DEFAULT_SPLIT, "sampling": dict(DEFAULT_SAMPLING)},
        "architecture_code": (
            default_multi_output_code({t["name"]: t["prediction_type"] for t in targets})
            if multi
            else default_architecture_code(prediction_type)
        ),
        "training": default_training(),
        "metric": default_metric(prediction_type),
    }


def default_metric(prediction_type: str) -> str:
    return DEFAULT_METRICS[prediction_type]


def clean_training(training: Any, current: dict) -> dict:
    if not isinstance(training, dict):
        raise DesignError('training must be an object such as {"epochs": 10, "batch_size": 32}.')
    merged = {**default_training(), **current, **training}
    mode = merged.get("mode", "standard")
    if mode not in ("standard", "advanced"):
        raise DesignError(
            f'training.mode {mode!r} is unknown; use "standard" (epochs, batch size) or "advanced" '
            "(the Training tab's build_sequence and fit_model)."
        )
    merged["epochs"] = _bounded_int(merged.get("epochs"), "training.epochs", 1, MAX_EPOCHS)
    merged["batch_size"] = _bounded_int(merged.get("batch_size"), "training.batch_size", 1, MAX_BATCH_SIZE)
    if not isinstance(merged.get("code"), str):
        raise DesignError("training.code must be the Training tab's Python code, as text.")
    if len(merged["code"]) > MAX_CODE_CHARS:
        raise DesignError(f"training.code is longer than {MAX_CODE_CHARS:,} characters.")
    if merged.get("keep") not in ("best", "last"):
        raise DesignError(
            'training.keep must be "best" (the epoch the optimization metric prefers) or "last".'
        )
    stopping = training.get("early_stopping", current.get("early_stopping"))
    if isinstance(stopping, dict):  # a partial object changes only what it names
        stopping = {**(current.get("early_stopping") or {}), **stopping}
    merged["early_stopping"] = _clean_early_stopping(stopping)
    if merged.setdefault("target_rescaling", "standard") not in TARGET_RESCALINGS:
        raise DesignError('training.target_rescaling must be "standard" or "none" (regression targets only).')
    merged["metrics"] = clean_metrics_settings(training.get("metrics"), current.get("metrics"))
    merged["runtime"] = clean_runtime(training.get("runtime"), current.get("runtime"))
    return merged


def clean_runtime(runtime: Any, current: Any = None) -> dict:
    """``{"gpus": "auto" | 0 | N | [indices], "memory_growth": bool, "cpu_devices": N}``; what is not
    sent keeps its saved value. ``cpu_devices`` splits the CPU into logical devices (how the
    multi-device path is tried without GPUs)."""
    if runtime is None:
        runtime = {}
    if not isinstance(runtime, dict):
        raise DesignError(
            'training.runtime must be an object such as {"gpus": "auto", "memory_growth": true}.'
        )
    unknown = set(runtime) - {"gpus", "memory_growth", "cpu_devices"}
    if unknown:
        raise DesignError(
            f"training.runtime has no setting {', '.join(sorted(unknown))}; "
            "it holds gpus, memory_growth and cpu_devices."
        )
    merged = {**default_training()["runtime"], **(current if isinstance(current, dict) else {}), **runtime}
    try:
        merged["gpus"] = parse_gpu_request(merged.get("gpus"))
    except GpuRequestError as exc:
        raise DesignError(f"training.runtime.{exc}") from None
    if not isinstance(merged.get("memory_growth"), bool):
        raise DesignError("training.runtime.memory_growth must be true or false.")
    if "cpu_devices" in merged:
        merged["cpu_devices"] = _bounded_int(merged["cpu_devices"], "training.runtime.cpu_devices", 1, 16)
    return merged


def clean_metrics_settings(metrics: Any, current: Any = None) -> dict:
    """The Metrics settings, kept in ``training["metrics"]``: ``{"cost_matrix": {"tp", "tn", "fp",
    "fn"}, "lift_fraction", "custom_score"}`` (see training_worker.metrics.parse_metrics_settings,
    which the runner applies too). What is not sent keeps its saved value (``current``), then its
    default; a partial cost matrix changes only the cells it names."""
    try:
        return parse_metrics_settings(metrics, current if isinstance(current, dict) else None).as_json()
    except ValueError as exc:
        raise DesignError(str(exc)) from None


def _clean_early_stopping(stopping: Any) -> dict:
    if stopping is None:
        stopping = {}
    if not isinstance(stopping, dict):
        raise DesignError(
            "training.early_stopping must be an object such as "
            '{"enabled": true, "patience": 5, "min_delta": 0}.'
        )
    stopping = {**default_training()["early_stopping"], **stopping}
    min_delta = stopping["min_delta"]
    if isinstance(min_delta, bool) or not isinstance(min_delta, int | float) or min_delta < 0:
        raise DesignError("training.early_stopping.min_delta must be a number of 0 or more.")
    return {
        "enabled": bool(stopping["enabled"]),
        "patience": _bounded_int(stopping["patience"], "training.early_stopping.patience", 0, MAX_EPOCHS),
        "min_delta": float(min_delta),
    }


def clean_split(
    split: Any,
    current: dict,
    dataset: Dataset | None = None,
    target: str | list[str] | None = None,
    features: list[dict] | None = None,
) -> dict:
    """The split: ``mode`` random (``train_ratio``, ``seed``, ``stratify``) or explicit
    (``test_dataset``: the id of another dataset of the same project holding the input columns and
    the target), and ``sampling`` of the dataset before splitting (``all``; ``head``: its first
    ``rows`` rows; ``random``: ``rows`` rows drawn with ``seed``). ``dataset``, ``target`` and
    ``features`` (the ML task's) let an explicit test dataset be checked."""
    if not isinstance(split, dict):
        raise DesignError(
            'split must be an object such as {"mode": "random", "train_ratio": 0.8, "seed": 1337}.'
        )
    merged = {**current, **split}
    mode = merged.setdefault("mode", "random")
    if mode not in SPLIT_MODES:
        raise DesignError(
            'split.mode must be "random" (train_ratio, seed, stratify) or "explicit" (test_dataset).'
        )
    ratio = merged.get("train_ratio", DEFAULT_SPLIT["train_ratio"])
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0.05 <= float(ratio) <= 0.95:
        raise DesignError("split.train_ratio must be a number between 0.05 and 0.95.")
    merged["train_ratio"] = float(ratio)
    merged["seed"] = _bounded_int(merged.get("seed", 1337), "split.seed", 0, 2**31 - 1)
    merged["stratify"] = bool(merged.get("stratify", True))
    merged["sampling"] = _clean_sampling(merged.get("sampling"))
    if mode == "explicit":
        merged["test_dataset"] = _clean_test_dataset(merged.get("test_dataset"), dataset, target, features)
    else:
        merged.pop("test_dataset", None)
    return merged


def _clean_sampling(sampling: Any) -> dict:
    if sampling is None:
        return dict(DEFAULT_SAMPLING)
    if not isinstance(sampling, dict):
        raise DesignError('split.sampling must be an object such as {"method": "head", "rows": 100000}.')
    method = sampling.get("method", "all")
    if method not in SAMPLING_METHODS:
        raise DesignError(
            'split.sampling.method must be "all", "head" (the first N rows) or "random" (N rows).'
        )
    if method == "all":
        return {"method": "all"}
    cleaned = {
        "method": method,
        "rows": _bounded_int(sampling.get("rows"), "split.sampling.rows", MIN_SAMPLE_ROWS, MAX_SAMPLE_ROWS),
    }
    if method == "random":
        cleaned["seed"] = _bounded_int(sampling.get("seed", 1337), "split.sampling.seed", 0, 2**31 - 1)
    return cleaned


def _clean_test_dataset(
    test_id: Any, dataset: Dataset | None, target: str | list[str] | None, features: list[dict] | None
) -> int:
    if isinstance(test_id, bool) or not isinstance(test_id, int):
        raise DesignError(
            'split.test_dataset must be the id of a dataset of this project when mode is "explicit".'
        )
    if dataset is None:
        return test_id
    if test_id == dataset.pk:
        raise DesignError(
            f"split.test_dataset: dataset {dataset.name!r} is the one being trained on; "
            "choose another dataset of the project, or the random split."
        )
    test = Dataset.objects.filter(pk=test_id, project_id=dataset.project_id).first()
    if test is None:
        raise DesignError(f"split.test_dataset: there is no dataset {test_id} in this project.")
    needed = [f["name"] for f in features or [] if f.get("role", "input") == "input"]
    needed += _names(target)
    have = {c["name"] for c in test.columns}
    missing = [name for name in needed if name not in have]
    if missing:
        raise DesignError(
            f"split.test_dataset: dataset {test.name!r} lacks the column(s) "
            f"{', '.join(repr(m) for m in missing)} that the ML task needs (its inputs and target)."
        )
    return test_id


def clean_features(features: Any, dataset: Dataset, target: str | list[str]) -> list[dict]:
    targets = _names(target)
    if not isinstance(features, list):
        raise DesignError("features must be a list of {name, role, type, handling, input} objects.")
    known = {c["name"] for c in dataset.columns}
    cleaned = []
    for entry in features:
        if not isinstance(entry, dict) or entry.get("name") not in known:
            name = entry.get("name") if isinstance(entry, dict) else entry
            raise DesignError(f"features: {name!r} is not a column of dataset {dataset.name!r}.")
        if entry["name"] in targets:
            which = "the target" if len(targets) == 1 else "a target"
            raise DesignError(f"features: {entry['name']!r} is {which}; it cannot also be a feature.")
        if entry.get("role", "input") not in FEATURE_ROLES:
            raise DesignError(
                f"features: role of {entry['name']!r} must be one of {', '.join(FEATURE_ROLES)}."
            )
        if entry.get("type") not in FEATURE_TYPES:
            raise DesignError(
                f"features: type of {entry['name']!r} must be one of {', '.join(FEATURE_TYPES)}."
            )
        input_name = str(entry.get("input") or "main")
        if not input_name.isidentifier():
            raise DesignError(
                f"features: input name {input_name!r} must be a Python identifier such as main."
            )
        cleaned.append(
            {
                **entry,
                "role": entry.get("role", "input"),
                "input": input_name,
                "handling": clean_handling(entry["name"], entry["type"], entry.get("handling")),
            }
        )
    if not any(f["role"] == "input" for f in cleaned):
        raise DesignError("features: at least one column must have role input.")
    _check_integer_inputs(cleaned)
    _check_image_inputs(cleaned)
    return cleaned


def image_input_name(feature: str) -> str:
    """The default input of an image feature: its own, named after it."""
    name = re.sub(r"\W+", "_", feature).strip("_") or "image"
    return name if name.isidentifier() else f"image_{name}"


def _check_image_inputs(features: list[dict]) -> None:
    by_input: dict[str, list[dict]] = {}
    for feature in features:
        if feature["role"] == "input":
            by_input.setdefault(feature["input"], []).append(feature)
    for input_name, members in by_input.items():
        images = [f["name"] for f in members if f["type"] == "image"]
        if images and len(members) > 1:
            names = ", ".join(repr(f["name"]) for f in members)
            raise DesignError(
                f"features: input {input_name!r} receives {names}, but an image (height, width, channels) "
                f"needs an input of its own: {', '.join(map(repr, images))}. Set the input of "
                f"{images[0]!r} to a new name such as {image_input_name(images[0])!r}."
            )


def _check_integer_inputs(features: list[dict]) -> None:
    """Refused here rather than minutes later in the runner: an Embedding needs an input of its own."""
    by_input: dict[str, list[dict]] = {}
    for feature in features:
        if feature["role"] == "input":
            by_input.setdefault(feature["input"], []).append(feature)
    for input_name, members in by_input.items():
        integer = [f["name"] for f in members if is_integer_encoded(f["type"], f["handling"])]
        if integer and len(members) > 1:
            names = ", ".join(repr(f["name"]) for f in members)
            raise DesignError(
                f"features: input {input_name!r} receives {names}, but integer ids for an Embedding "
                "layer (categorical index or text sequence encoding) need an input of their own: "
                f"{', '.join(map(repr, integer))}. Set the input of {integer[0]!r} to a new name such as "
                f"{integer[0] + '_ids'!r}."
            )


# Accepted handling options per feature type: option -> allowed values, or (low, high) for numbers.
# A list option (LIST_OPTIONS) takes a non-empty list of the allowed values.
HANDLING_OPTIONS: dict[str, dict[str, tuple]] = {
    "numeric": {
        "rescaling": ("standard", "minmax", "none"),
        "missing": ("mean", "median", "constant"),
        "missing_value": (-1e300, 1e300),
    },
    "categorical": {"encoding": feature_encodings("categorical"), "max_levels": (1, 100_000)},
    "text": {
        "encoding": feature_encodings("text"),
        "max_features": (1, 1_000_000),
        "ngram_max": (1, 5),
        "vocabulary_size": (2, 1_000_000),  # ids 0 (padding) and 1 (out of vocabulary) included
        "sequence_length": (1, 10_000),
    },
    "date": {"components": DATE_COMPONENTS},
    "image": {
        "loader": IMAGE_LOADERS,  # custom: preprocess_image(path) of the Preprocessing tab
        "height": (1, 4096),
        "width": (1, 4096),
        "channels": (1, 4),  # 1 grayscale, 3 RGB, 4 RGBA
        "scale": (True, False),
    },
}
LIST_OPTIONS = ("components",)
BOOLEAN_OPTIONS = ("scale",)
# Options of the default image loader; a custom loader's preprocess_image decides all of that itself.
DEFAULT_LOADER_OPTIONS = ("height", "width", "channels", "scale")
# The options each encoding accepts (other types accept all of theirs): an option of another
# encoding would silently do nothing, so it is refused rather than kept.
ENCODING_OPTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("categorical", "dummy"): ("encoding", "max_levels"),
    ("categorical", "index"): ("encoding", "max_levels"),
    ("text", "tfidf"): ("encoding", "max_features", "ngram_max"),
    ("text", "counts"): ("encoding", "max_features", "ngram_max"),
    ("text", "sequence"): ("encoding", "vocabulary_size", "sequence_length"),
}


def clean_handling(name: str, feature_type: str, handling: Any) -> dict:
    """The defaults of the type (and encoding), overridden by the given options, each checked."""
    if handling is not None and not isinstance(handling, dict):
        raise DesignError(f"features: handling of {name!r} must be an object.")
    handling = handling or {}
    options = HANDLING_OPTIONS[feature_type]
    encoding = handling.get("encoding")
    if encoding is not None and "encoding" in options and encoding not in options["encoding"]:
        raise DesignError(
            f"features: encoding of {name!r} must be one of {', '.join(options['encoding'])}; "
            f"got {encoding!r}."
        )
    cleaned = default_feature_handling(feature_type, encoding if "encoding" in options else None)
    encoding = cleaned.get("encoding")
    if feature_type == "image" and handling.get("loader") == "custom":
        # The default loader's options do not apply (the UI keeps them when the loader changes).
        unknown = [o for o in handling if o not in ("loader", *DEFAULT_LOADER_OPTIONS)]
        if unknown:
            raise DesignError(
                f"features: image handling of {name!r} has no option {unknown[0]!r}; options are "
                f"loader, {', '.join(DEFAULT_LOADER_OPTIONS)}."
            )
        return {"loader": "custom"}
    accepted_options = ENCODING_OPTIONS.get((feature_type, encoding), tuple(options))
    for option, value in handling.items():
        if option not in accepted_options:
            accepted = ", ".join(accepted_options)
            which = f"{feature_type} handling" + (f" with encoding {encoding}" if encoding else "")
            raise DesignError(
                f"features: {which} of {name!r} has no option {option!r}; options are {accepted}."
            )
        allowed = options[option]
        if option in LIST_OPTIONS:
            if (
                not isinstance(value, list)
                or not value
                or any(not isinstance(item, str) or item not in allowed for item in value)
            ):
                raise DesignError(
                    f"features: {option} of {name!r} must be a non-empty list of {', '.join(allowed)}; "
                    f"got {value!r}."
                )
            value = [item for item in allowed if item in value]  # canonical order, no duplicates
        elif option in BOOLEAN_OPTIONS:
            value = {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value
            if not isinstance(value, bool):
                raise DesignError(f"features: {option} of {name!r} must be true or false; got {value!r}.")
        elif isinstance(allowed[0], str):
            if value not in allowed:
                raise DesignError(
                    f"features: {option} of {name!r} must be one of {', '.join(allowed)}; got {value!r}."
                )
        else:
            low, high = allowed
            number_type = float if isinstance(low, float) else int
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not low <= value <= high
                or (number_type is int and value != int(value))
            ):
                kind = "a number" if number_type is float else f"a whole number from {low} to {high}"
                raise DesignError(f"features: {option} of {name!r} must be {kind}; got {value!r}.")
            value = number_type(value)
            if option == "channels" and value == 2:
                raise DesignError(
                    f"features: channels of {name!r} must be 1 (grayscale), 3 (RGB) or 4 (RGBA); got 2."
                )
        cleaned[option] = value
    return cleaned


def clean_prediction_type(value: Any) -> PredictionType:
    try:
        return PredictionType(value)
    except ValueError:
        raise DesignError("prediction_type must be one of regression, binary, multiclass.") from None


def _bounded_int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DesignError(f"{name} must be a whole number from {low} to {high}; got {value!r}.")
    return value


def handling_schema() -> dict[str, dict]:
    """What the Features table may offer per column type, from the same tables the API checks."""
    schema: dict[str, dict] = {}
    for feature_type, options in HANDLING_OPTIONS.items():
        specs: dict[str, dict] = {}
        for option, allowed in options.items():
            if option in LIST_OPTIONS:
                specs[option] = {"multi": list(allowed)}
            elif option in BOOLEAN_OPTIONS:
                specs[option] = {"choices": [True, False]}
            elif isinstance(allowed[0], str):
                specs[option] = {"choices": list(allowed)}
            else:
                specs[option] = {"min": allowed[0], "max": allowed[1]}
        encodings = {
            encoding: {
                "default": default_feature_handling(feature_type, encoding),
                "options": list(ENCODING_OPTIONS.get((feature_type, encoding), options)),
            }
            for encoding in options.get("encoding", ())
        }
        schema[feature_type] = {
            "default": default_feature_handling(feature_type),
            "options": specs,
            "encodings": encodings,
        }
    return schema
