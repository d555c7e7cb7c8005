"""An ML task's design: working defaults from the dataset, and validation of edits."""

from __future__ import annotations

from typing import Any

from analyses.models import Dataset, PredictionType
from training_worker.defaults import default_architecture_code, default_feature_handling, default_training

DEFAULT_SPLIT = {"train_ratio": 0.8, "seed": 1337, "stratify": True}
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 1_000_000
FEATURE_ROLES = ("input", "reject")
FEATURE_TYPES = ("numeric", "categorical", "text")
TARGET_RESCALINGS = ("standard", "none")


class DesignError(ValueError):
    """An edit that cannot be saved; the message names the field and what is accepted."""


def default_features(dataset: Dataset, target: str) -> list[dict]:
    """Every column but the target, with its type's default handling, into the input `main`."""
    features = []
    for column in dataset.columns:
        if column["name"] == target:
            continue
        column_type = column["type"] if column["type"] in FEATURE_TYPES else "categorical"
        features.append(
            {
                "name": column["name"],
                "role": "input",
                "type": column_type,
                "handling": default_feature_handling(column_type),
                "input": "main",
            }
        )
    return features


def default_design(dataset: Dataset, target: str, prediction_type: str) -> dict[str, Any]:
    return {
        "features": default_features(dataset, target),
        "split": dict(DEFAULT_SPLIT),
        "architecture_code": default_architecture_code(prediction_type),
        "training": default_training(),
        "metric": default_metric(prediction_type),
    }


def default_metric(prediction_type: str) -> str:
    return {"regression": "R2 Score", "binary": "ROC AUC", "multiclass": "ROC AUC"}[prediction_type]


def clean_training(training: Any, current: dict) -> dict:
    if not isinstance(training, dict):
        raise DesignError('training must be an object such as {"epochs": 10, "batch_size": 32}.')
    merged = {**current, **training}
    mode = merged.get("mode", "standard")
    if mode != "standard":
        raise DesignError(f'training.mode {mode!r} is not available yet; use "standard".')
    merged["epochs"] = _bounded_int(merged.get("epochs"), "training.epochs", 1, MAX_EPOCHS)
    merged["batch_size"] = _bounded_int(merged.get("batch_size"), "training.batch_size", 1, MAX_BATCH_SIZE)
    if merged.setdefault("target_rescaling", "standard") not in TARGET_RESCALINGS:
        raise DesignError('training.target_rescaling must be "standard" or "none" (regression targets only).')
    return merged


def clean_split(split: Any, current: dict) -> dict:
    if not isinstance(split, dict):
        raise DesignError('split must be an object such as {"train_ratio": 0.8, "seed": 1337}.')
    merged = {**current, **split}
    ratio = merged.get("train_ratio")
    if not isinstance(ratio, int | float) or not 0.05 <= float(ratio) <= 0.95:
        raise DesignError("split.train_ratio must be a number between 0.05 and 0.95.")
    merged["train_ratio"] = float(ratio)
    merged["seed"] = _bounded_int(merged.get("seed", 1337), "split.seed", 0, 2**31 - 1)
    merged["stratify"] = bool(merged.get("stratify", True))
    return merged


def clean_features(features: Any, dataset: Dataset, target: str) -> list[dict]:
    if not isinstance(features, list):
        raise DesignError("features must be a list of {name, role, type, handling, input} objects.")
    known = {c["name"] for c in dataset.columns}
    cleaned = []
    for entry in features:
        if not isinstance(entry, dict) or entry.get("name") not in known:
            name = entry.get("name") if isinstance(entry, dict) else entry
            raise DesignError(f"features: {name!r} is not a column of dataset {dataset.name!r}.")
        if entry["name"] == target:
            raise DesignError(f"features: {target!r} is the target; it cannot also be a feature.")
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
        entry = {**entry, "handling": clean_handling(entry["name"], entry["type"], entry.get("handling"))}
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
    return cleaned


# Accepted handling options per feature type: option -> allowed values, or (low, high) for numbers.
HANDLING_OPTIONS: dict[str, dict[str, tuple]] = {
    "numeric": {
        "rescaling": ("standard", "minmax", "none"),
        "missing": ("mean", "median", "constant"),
        "missing_value": (-1e300, 1e300),
    },
    "categorical": {"encoding": ("dummy",), "max_levels": (1, 10_000)},
    "text": {"encoding": ("tfidf",), "max_features": (1, 100_000)},
}


def clean_handling(name: str, feature_type: str, handling: Any) -> dict:
    """The type's defaults, overridden by the given options, each checked against what is accepted."""
    if handling is not None and not isinstance(handling, dict):
        raise DesignError(f"features: handling of {name!r} must be an object.")
    cleaned = default_feature_handling(feature_type)
    options = HANDLING_OPTIONS[feature_type]
    for option, value in (handling or {}).items():
        if option not in options:
            accepted = ", ".join(options)
            raise DesignError(
                f"features: {feature_type} handling of {name!r} has no option {option!r}; "
                f"options are {accepted}."
            )
        allowed = options[option]
        if isinstance(allowed[0], str):
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
