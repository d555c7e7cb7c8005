"""Feature and target preprocessing, fitted on the train split only, applied to any frame.

Each feature with role ``input`` is turned into float columns by one scikit-learn transformer and
routed to its model input (``"main"`` unless the design names another); the columns of an input
are concatenated in feature order. The fitted :class:`Preprocessing` is saved with joblib next to
the model, so scoring later transforms new rows exactly as training did.

Feature handling (the ``handling`` object of each feature in the job spec):

- numeric: ``rescaling`` standard | minmax | none; ``missing`` mean | median | constant, with
  ``missing_value`` (default 0) for constant.
- categorical: dummy encoding of the ``max_levels`` most frequent levels (missing is a level of its
  own; unseen levels encode as all zeros).
- text: TF-IDF with at most ``max_features`` terms (missing is the empty text).

Regression target (``training.target_rescaling``): ``standard`` (the default) or ``none``. With
``standard`` the model is fit on ``(y - mean) / scale``, both fitted on the train split: a raw
target in the hundreds would otherwise need many epochs before the default network's small initial
outputs reach it. :meth:`Preprocessing.output_to_predictions` maps model output back to the
target's units, so metrics, predictions and later scoring never see the scaled values. Keras' own
``loss`` (and metrics compiled into the model, such as ``mae``) are computed by Keras on what the
model was fit on, so for a rescaled target they are in scaled units.

This module must stay importable without TensorFlow.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import numpy as np
import pandas as pd
from sklearn.base import TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

DEFAULT_INPUT = "main"
MISSING_LEVEL = "(missing)"
FEATURE_TYPES = ("numeric", "categorical", "text")
PREDICTION_TYPES = ("regression", "binary", "multiclass")
TARGET_RESCALINGS = ("standard", "none")
DEFAULT_TARGET_RESCALING = "standard"


class PreprocessingError(ValueError):
    """The dataset or the feature handling cannot be used; the message says how to fix it."""


@dataclass
class FittedFeature:
    name: str
    type: str
    input: str
    handling: dict[str, Any]
    transformer: TransformerMixin
    output_columns: list[str]


@dataclass(frozen=True)
class TargetScaling:
    """A regression target's rescaling, fitted on the train split: the model learns ``(y - mean) / scale``."""

    method: str  # one of TARGET_RESCALINGS; "none" keeps mean 0 and scale 1
    mean: float = 0.0
    scale: float = 1.0

    @classmethod
    def fit(cls, y: np.ndarray, method: str) -> TargetScaling:
        _check_target_rescaling(method)
        if method == "none":
            return cls(method)
        values = np.asarray(y, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise PreprocessingError("The regression target has infinite values; remove those rows.")
        scale = float(np.std(values))
        # A constant target: nothing to rescale, only to centre (as scikit-learn's StandardScaler does).
        return cls(method, float(np.mean(values)), scale if scale > 0 else 1.0)

    def transform(self, y: np.ndarray) -> np.ndarray:
        return ((np.asarray(y, dtype=np.float64) - self.mean) / self.scale).astype(np.float32)

    def inverse_transform(self, output: np.ndarray) -> np.ndarray:
        return np.asarray(output, dtype=np.float64) * self.scale + self.mean


@dataclass
class Preprocessing:
    """Fitted preprocessing: ``transform(frame)`` gives one float32 2-D array per model input.

    The target: ``encode_target`` gives it in its own units (class indices, or values), which the
    metrics compare against; ``scale_target`` turns that into what ``model.fit`` receives, and
    ``output_to_predictions`` turns the model's output back into the target's units. Keras' own
    ``loss`` and compiled metrics therefore stay in scaled units for a rescaled regression target.
    """

    prediction_type: str
    target: str
    classes: list[str] | None
    features: list[FittedFeature] = field(default_factory=list)
    # Regression only; None for classification (and for objects saved before target rescaling existed).
    target_scaling: TargetScaling | None = None

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        features: list[dict[str, Any]],
        target: str,
        prediction_type: str,
        classes: list[Any] | None = None,
        target_rescaling: str | None = None,
    ) -> Preprocessing:
        """Fit on the train split; ``target_rescaling`` (standard by default) only applies to regression."""
        _check_classes(prediction_type, classes)
        rescaling = DEFAULT_TARGET_RESCALING if target_rescaling is None else target_rescaling
        _check_target_rescaling(rescaling)  # for classification too: a typo is a typo
        inputs = [spec for spec in features if spec.get("role") == "input"]
        if not inputs:
            raise PreprocessingError(
                "No feature has the role 'input', so the model would have nothing to learn from. "
                "Set at least one feature to 'input' in the Features handling."
            )
        missing = [spec["name"] for spec in inputs if spec["name"] not in frame.columns]
        if missing:
            raise PreprocessingError(
                f"Input feature(s) {missing} are not columns of the dataset. "
                "Reject them in the Features handling, or re-upload the dataset with these columns."
            )
        preprocessing = cls(
            prediction_type=prediction_type,
            target=target,
            classes=None if classes is None else [str(label) for label in classes],
        )
        for spec in inputs:
            preprocessing.features.append(_fit_feature(frame[spec["name"]], spec))
        if prediction_type == "regression":
            if target not in frame.columns:
                raise PreprocessingError(f"The target column {target!r} is not in the dataset.")
            y = preprocessing.encode_target(frame[target])
            preprocessing.target_scaling = TargetScaling.fit(y, rescaling)
        return preprocessing

    @property
    def input_names(self) -> list[str]:
        return list(dict.fromkeys(feature.input for feature in self.features))

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each input without the batch dimension, e.g. ``{"main": (30,)}``."""
        return {
            name: (sum(len(f.output_columns) for f in self.features if f.input == name),)
            for name in self.input_names
        }

    @property
    def n_classes(self) -> int:
        """What build_model receives: 2 for binary, the number of classes for multiclass, 1 for regression."""
        return 1 if self.classes is None else len(self.classes)

    def transform(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        blocks: dict[str, list[np.ndarray]] = {name: [] for name in self.input_names}
        for feature in self.features:
            if feature.name not in frame.columns:
                raise PreprocessingError(
                    f"Column {feature.name!r} is missing; the model was trained with it."
                )
            values = _column_values(frame[feature.name], feature.type)
            transformed = feature.transformer.transform(values)
            if hasattr(transformed, "toarray"):  # TF-IDF output is sparse
                transformed = transformed.toarray()
            blocks[feature.input].append(np.asarray(transformed, dtype=np.float32))
        return {name: np.hstack(parts).astype(np.float32, copy=False) for name, parts in blocks.items()}

    def encode_target(self, values: pd.Series) -> np.ndarray:
        """Class indices into ``classes`` (int64) for classification, float32 values for regression."""
        if self.classes is None:
            numbers = pd.to_numeric(values, errors="coerce")
            if numbers.isna().any():
                examples = values[numbers.isna()].astype(str).unique()[:5].tolist()
                raise PreprocessingError(
                    f"Regression needs a numeric target; {self.target!r} has values like {examples}. "
                    "Choose a numeric target, or use a classification prediction type."
                )
            return numbers.to_numpy(dtype=np.float32)
        index = _label_index(self.classes)
        codes = [index.get(_label_key(label)) for label in values]
        unknown = [str(label) for label, code in zip(values, codes, strict=True) if code is None]
        if unknown:
            raise PreprocessingError(
                f"Target {self.target!r} has values {sorted(set(unknown))[:5]} that are not among the "
                f"classes {self.classes}. Re-run the schema detection of the dataset so the classes match."
            )
        return np.asarray(codes, dtype=np.int64)

    def scale_target(self, y: np.ndarray) -> np.ndarray:
        """What ``model.fit`` receives for a target from ``encode_target``: rescaled for regression."""
        if self.target_scaling is None:
            return y
        return self.target_scaling.transform(y)

    def output_to_predictions(self, output: np.ndarray) -> np.ndarray:
        """Raw model output to predictions in the target's units: the one place scoring calls.

        Regression: values, shape ``(n,)``, the rescaling undone. Classification: the output as is
        (the probabilities ``metrics.class_probabilities`` and ``predicted_classes`` read).
        """
        if self.classes is not None:
            return np.asarray(output)
        values = np.asarray(output, dtype=np.float64).reshape(len(output))
        return values if self.target_scaling is None else self.target_scaling.inverse_transform(values)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready, human-readable account of what was fitted (saved as preprocessing.json)."""
        return {
            "target": self.target,
            "prediction_type": self.prediction_type,
            "classes": self.classes,
            "target_rescaling": None if self.target_scaling is None else asdict(self.target_scaling),
            "input_shapes": {name: list(shape) for name, shape in self.input_shapes.items()},
            "features": [_describe_feature(feature) for feature in self.features],
        }


def read_dataset(
    path: str | os.PathLike[str] | IO[str], features: list[dict[str, Any]], target: str, prediction_type: str
) -> pd.DataFrame:
    """Read the CSV with categorical and text columns (and a class target) kept as text."""
    as_text = {spec["name"] for spec in features if spec.get("type") in ("categorical", "text")}
    if prediction_type != "regression":
        as_text.add(target)
    frame = pd.read_csv(path, dtype=dict.fromkeys(as_text, object), low_memory=False)
    if target not in frame.columns:
        raise PreprocessingError(
            f"The target column {target!r} is not in the dataset (columns: {list(frame.columns)[:20]}). "
            "Choose another target, or re-upload the dataset."
        )
    return frame


def drop_missing_target(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    kept = frame[frame[target].notna()]
    if len(kept) < 2:
        raise PreprocessingError(
            f"Only {len(kept)} row(s) have a value for the target {target!r}; training needs at least 2."
        )
    return kept


def _check_classes(prediction_type: str, classes: list[Any] | None) -> None:
    if prediction_type not in PREDICTION_TYPES:
        raise PreprocessingError(
            f"Unknown prediction type {prediction_type!r}; expected one of {PREDICTION_TYPES}."
        )
    if prediction_type == "regression":
        return
    needed = "exactly 2" if prediction_type == "binary" else "at least 2"
    count = len(classes or [])
    if (prediction_type == "binary" and count != 2) or count < 2:
        raise PreprocessingError(
            f"A {prediction_type} prediction needs {needed} target classes; the design lists {count} "
            f"({classes}). Choose the prediction type that matches the target's values."
        )


def _check_target_rescaling(method: str) -> None:
    if method not in TARGET_RESCALINGS:
        raise PreprocessingError(
            f"Target rescaling {method!r} is unknown; use one of {TARGET_RESCALINGS} in the Training tab."
        )


def split_train_test(
    frame: pd.DataFrame, target: str, prediction_type: str, split: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random train/test split; stratified on the target for classification when asked."""
    train_ratio = float(split.get("train_ratio", 0.8))
    if not 0 < train_ratio < 1:
        raise PreprocessingError(f"The train ratio must be between 0 and 1 (exclusive); got {train_ratio}.")
    seed = int(split.get("seed", 1337))
    stratify = None
    if prediction_type != "regression" and split.get("stratify", True):
        stratify = frame[target].map(_label_key)
    try:
        train, test = train_test_split(frame, train_size=train_ratio, random_state=seed, stratify=stratify)
    except ValueError as exc:
        if stratify is None:
            raise PreprocessingError(f"Could not split {len(frame)} rows into train and test: {exc}") from exc
        # A class too rare to be in both splits: a plain random split still lets training run.
        warnings.warn(f"Stratified split impossible ({exc}); using a plain random split.", stacklevel=2)
        train, test = train_test_split(frame, train_size=train_ratio, random_state=seed)
    return train, test


def _fit_feature(column: pd.Series, spec: dict[str, Any]) -> FittedFeature:
    name, feature_type = spec["name"], spec.get("type")
    handling = dict(spec.get("handling") or {})
    values = _column_values(column, feature_type)
    if feature_type == "numeric":
        transformer, columns = _numeric_transformer(name, handling), [name]
    elif feature_type == "categorical":
        levels = _top_levels(values[:, 0], int(handling.get("max_levels", 100)))
        transformer = OneHotEncoder(
            categories=[levels], handle_unknown="ignore", sparse_output=False, dtype=np.float32
        )
        columns = [f"{name}={level}" for level in levels]
    elif feature_type == "text":
        transformer = TfidfVectorizer(max_features=int(handling.get("max_features", 200)))
        columns = []
    else:
        raise PreprocessingError(
            f"Feature {name!r} has type {feature_type!r}; expected one of {FEATURE_TYPES}. Fix its type."
        )
    try:
        transformer.fit(values)
    except ValueError as exc:  # e.g. TF-IDF on a column with no words at all
        raise PreprocessingError(f"Could not fit the {feature_type} handling of {name!r}: {exc}") from exc
    if feature_type == "text":
        columns = [f"{name}:{term}" for term in transformer.get_feature_names_out()]
    return FittedFeature(
        name=name,
        type=feature_type,
        input=spec.get("input") or DEFAULT_INPUT,
        handling=handling,
        transformer=transformer,
        output_columns=columns,
    )


def _numeric_transformer(name: str, handling: dict[str, Any]) -> Pipeline:
    missing = handling.get("missing", "mean")
    if missing not in ("mean", "median", "constant"):
        raise PreprocessingError(
            f"Numeric feature {name!r}: missing handling {missing!r} is unknown; "
            "use mean, median or constant."
        )
    # keep_empty_features: a column that is entirely missing in train still yields one column.
    imputer = SimpleImputer(
        strategy=missing, fill_value=float(handling.get("missing_value", 0)), keep_empty_features=True
    )
    rescaling = handling.get("rescaling", "standard")
    scalers = {"standard": StandardScaler, "minmax": MinMaxScaler, "none": None}
    if rescaling not in scalers:
        raise PreprocessingError(
            f"Numeric feature {name!r}: rescaling {rescaling!r} is unknown; use standard, minmax or none."
        )
    scaler = scalers[rescaling]
    return Pipeline([("impute", imputer), ("rescale", scaler() if scaler else "passthrough")])


def _column_values(column: pd.Series, feature_type: str | None) -> np.ndarray:
    """The column in the form its transformer expects (plain numpy, whatever pandas' dtypes)."""
    if feature_type == "numeric":
        return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64).reshape(-1, 1)
    if feature_type == "categorical":
        text = column.astype(object).where(column.notna(), MISSING_LEVEL)
        return np.asarray([str(value) for value in text], dtype=object).reshape(-1, 1)
    # text: TfidfVectorizer takes a 1-D sequence of strings
    return np.asarray([str(value) if pd.notna(value) else "" for value in column], dtype=object)


def _top_levels(values: np.ndarray, max_levels: int) -> list[str]:
    counts = pd.Series(values).value_counts()
    # Most frequent first, ties broken by the level itself so refits give the same columns.
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return sorted(level for level, _ in ranked[: max(1, max_levels)])


def _label_key(label: Any) -> str:
    """Labels compare as text, except numbers: "1", 1 and "1.0" are the same class."""
    text = str(label).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return repr(number) if np.isfinite(number) else text


def _label_index(classes: list[str]) -> dict[str, int]:
    return {_label_key(label): position for position, label in enumerate(classes)}


def _describe_feature(feature: FittedFeature) -> dict[str, Any]:
    description: dict[str, Any] = {
        "name": feature.name,
        "type": feature.type,
        "input": feature.input,
        "handling": feature.handling,
        "output_columns": feature.output_columns,
    }
    transformer = feature.transformer
    if feature.type == "numeric":
        imputer, scaler = transformer.named_steps["impute"], transformer.named_steps["rescale"]
        description["missing_value"] = float(imputer.statistics_[0])
        if isinstance(scaler, StandardScaler):
            description["mean"], description["scale"] = float(scaler.mean_[0]), float(scaler.scale_[0])
        elif isinstance(scaler, MinMaxScaler):
            description["min"], description["max"] = float(scaler.data_min_[0]), float(scaler.data_max_[0])
    elif feature.type == "categorical":
        description["levels"] = [str(level) for level in transformer.categories_[0]]
    return description
