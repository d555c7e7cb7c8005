"""Feature and target preprocessing, fitted on the train split only, applied to any frame.

Each feature with role ``input`` is turned into columns by one scikit-learn transformer and routed
to its model input (``"main"`` unless the design names another); the columns of an input are
concatenated in feature order. Inputs are float32, except the integer inputs: a feature encoded as
integer ids for a ``keras.layers.Embedding`` (categorical ``index``, text ``sequence``) must be the
only feature of its input, which is int32; :attr:`Preprocessing.vocabularies` gives the
``input_dim`` its Embedding needs. The fitted :class:`Preprocessing` is saved with joblib next to
the model, so scoring later transforms new rows exactly as training did.

Feature handling (the ``handling`` object of each feature in the job spec):

- numeric: ``rescaling`` standard | minmax | none; ``missing`` mean | median | constant, with
  ``missing_value`` (default 0) for constant.
- categorical, ``encoding`` dummy (the default): dummy columns of the ``max_levels`` most frequent
  levels (missing is a level of its own; unseen and rarer levels encode as all zeros).
- categorical, ``encoding`` index: one int32 column; 0 = missing, 1 = others (unseen in train, or
  rarer than the ``max_levels`` most frequent), then the levels from 2 by decreasing train frequency.
- text, ``encoding`` tfidf (the default) or counts: TF-IDF weights or term counts of at most
  ``max_features`` terms, n-grams of 1 to ``ngram_max`` words (default 1); missing is the empty text.
- text, ``encoding`` sequence: the ids of the first ``sequence_length`` tokens (lowercased runs of
  word characters), padded with 0 at the end; 1 = out of vocabulary, then the
  ``vocabulary_size - 2`` most frequent train tokens from 2 (ids are always below ``vocabulary_size``).
- date: parsed by pandas (``format="mixed"``, unparsable values are missing, time zones converted to
  UTC); the ``components`` among year, month, day, weekday, hour and timestamp (days since
  1970-01-01), each imputed with its train mean and standard-scaled.

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
import re
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

from training_worker.arrays import DEFAULT_MEMMAP_BYTES, ArrayStore, chunk_rows
from training_worker.dataset_files import read_columns, sample_positions
from training_worker.defaults import DATE_COMPONENTS, default_feature_handling, is_integer_encoded

DEFAULT_INPUT = "main"
MISSING_LEVEL = "(missing)"
FEATURE_TYPES = ("numeric", "categorical", "text", "date", "image")
CATEGORICAL_ENCODINGS = ("dummy", "index")
TEXT_ENCODINGS = ("tfidf", "counts", "sequence")
# Reserved ids of the integer encodings (an Embedding's rows 0 and 1); real levels or words from 2.
MISSING_ID = 0  # index: a missing level; sequence: padding
OTHERS_ID = 1  # index: unseen or rare level; sequence: out-of-vocabulary token
FIRST_ID = 2
TOKEN_PATTERN = re.compile(r"\w+")
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

    @property
    def integer_encoded(self) -> bool:
        """Integer ids for an Embedding (categorical index, text sequence) rather than floats."""
        return is_integer_encoded(self.type, self.handling)

    @property
    def image_shape(self) -> tuple[int, ...] | None:
        """(height, width, channels) of an image feature; None for other types."""
        return self.transformer.shape_ if isinstance(self.transformer, ImageLoader) else None

    @property
    def embedding_input_dim(self) -> int | None:
        """``keras.layers.Embedding(input_dim=...)`` for an integer-encoded feature: the largest id + 1."""
        transformer = self.transformer
        if isinstance(transformer, IndexEncoder):
            return FIRST_ID + len(transformer.levels_)
        if isinstance(transformer, SequenceEncoder):
            return FIRST_ID + len(transformer.vocabulary_)
        return None


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
    # Multi-output: the targets after the first, each a Preprocessing without features (its
    # encode_target, scale_target and output_to_predictions); empty for a single-target model.
    extra_targets: list[Preprocessing] = field(default_factory=list)

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        features: list[dict[str, Any]],
        target: str,
        prediction_type: str,
        classes: list[Any] | None = None,
        target_rescaling: str | None = None,
        preprocessing_code: str = "",
        rows: np.ndarray | None = None,
        images_dir: str | os.PathLike[str] | None = None,
    ) -> Preprocessing:
        """Fit on the train split: the rows of ``frame`` at positions ``rows`` (all rows when None).

        ``target_rescaling`` (standard by default) only applies to regression. Image columns hold
        file names under ``images_dir`` (paths as they are when None). Each column is taken on its
        own, so fitting never copies the whole train split.
        """
        _check_classes(prediction_type, classes)
        rescaling = DEFAULT_TARGET_RESCALING if target_rescaling is None else target_rescaling
        _check_target_rescaling(rescaling)  # for classification too: a typo is a typo
        inputs = [spec for spec in features if spec.get("role") == "input"]
        if not inputs:
            raise PreprocessingError(
                "No feature has the role 'input', so the model would have nothing to learn from. "
                "Set at least one feature to 'input' in the Features handling."
            )
        _check_integer_inputs(inputs)  # before fitting: a mistake in the design, not in the data
        _check_image_inputs(inputs)
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
            column = take(frame[spec["name"]], rows)
            if spec.get("type") == "image":
                column = join_image_paths(column, images_dir)
                preprocessing.features.append(_fit_image(column, spec, preprocessing_code))
            else:
                preprocessing.features.append(_fit_feature(column, spec))
            del column
        if prediction_type == "regression":
            if target not in frame.columns:
                raise PreprocessingError(f"The target column {target!r} is not in the dataset.")
            y = preprocessing.encode_target(take(frame[target], rows))
            preprocessing.target_scaling = TargetScaling.fit(y, rescaling)
        return preprocessing

    @classmethod
    def fit_target(
        cls,
        frame: pd.DataFrame,
        target: str,
        prediction_type: str,
        classes: list[Any] | None = None,
        target_rescaling: str | None = None,
        rows: np.ndarray | None = None,
    ) -> Preprocessing:
        """One more target of a multi-output model: its encoding (and rescaling), no features."""
        _check_classes(prediction_type, classes)
        rescaling = DEFAULT_TARGET_RESCALING if target_rescaling is None else target_rescaling
        _check_target_rescaling(rescaling)
        preprocessing = cls(
            prediction_type=prediction_type,
            target=target,
            classes=None if classes is None else [str(label) for label in classes],
        )
        if prediction_type == "regression":
            if target not in frame.columns:
                raise PreprocessingError(f"The target column {target!r} is not in the dataset.")
            preprocessing.target_scaling = TargetScaling.fit(
                preprocessing.encode_target(take(frame[target], rows)), rescaling
            )
        return preprocessing

    @property
    def targets(self) -> list[Preprocessing]:
        """The preprocessing of each target, this one's first (one for a single-target model)."""
        return [self, *getattr(self, "extra_targets", [])]

    @property
    def input_names(self) -> list[str]:
        return list(dict.fromkeys(feature.input for feature in self.features))

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each input without the batch dimension, e.g. ``{"main": (30,)}``."""
        images = {f.input: f.image_shape for f in self.features if f.image_shape is not None}
        return {
            name: images[name]
            if name in images
            else (sum(len(f.output_columns) for f in self.features if f.input == name),)
            for name in self.input_names
        }

    @property
    def vocabularies(self) -> dict[str, int]:
        """``input_dim`` of the Embedding of each integer input, e.g. ``{"city_index": 52}``."""
        return {
            feature.input: dim
            for feature in self.features
            if (dim := feature.embedding_input_dim) is not None
        }

    @property
    def n_classes(self) -> int:
        """What build_model receives: 2 for binary, the number of classes for multiclass, 1 for regression."""
        return 1 if self.classes is None else len(self.classes)

    def transform(self, frame: pd.DataFrame, store: ArrayStore | None = None) -> dict[str, np.ndarray]:
        """One array per input: int32 for an integer input (ids for an Embedding), else float32;
        2-D, or (n, height, width, channels) for an image. Large arrays are memory-mapped files
        (``store``; by default under ``.arrays`` in the current directory)."""
        return self.transform_rows(frame, store=store)

    def transform_rows(
        self,
        frame: pd.DataFrame,
        rows: np.ndarray | None = None,
        store: ArrayStore | None = None,
        images_dir: str | os.PathLike[str] | None = None,
        label: str = "rows",
        chunk: int | None = None,
    ) -> dict[str, np.ndarray]:
        """:meth:`transform` of the rows at positions ``rows`` (all when None), a chunk at a time:
        what is held besides the result is one chunk of rows, whatever the frame's size.

        Image columns hold file names under ``images_dir`` (paths as they are when None); ``label``
        names the files of memory-mapped arrays; ``chunk`` (rows) defaults to about 32 MB of output.
        """
        store = store or ArrayStore(os.path.join(os.getcwd(), ".arrays"), DEFAULT_MEMMAP_BYTES)
        count = len(frame) if rows is None else len(rows)
        shapes, dtypes = self.input_shapes, self._input_dtypes()
        writers = {
            name: store.writer(f"{label}-{name}", (count, *shapes[name]), dtypes[name])
            for name in self.input_names
        }
        row_bytes = sum(int(np.prod(shape)) * 4 for shape in shapes.values())
        step = chunk or chunk_rows(row_bytes)
        for start in range(0, count, step):
            part = (
                frame.iloc[start : start + step] if rows is None else frame.iloc[rows[start : start + step]]
            )
            for name, array in self._transform_chunk(part, images_dir).items():
                writers[name].write(array)
        return {name: writer.finish() for name, writer in writers.items()}

    def _input_dtypes(self) -> dict[str, type]:
        integer = {feature.input for feature in self.features if feature.integer_encoded}
        return {name: np.int32 if name in integer else np.float32 for name in self.input_names}

    def _transform_chunk(
        self, frame: pd.DataFrame, images_dir: str | os.PathLike[str] | None
    ) -> dict[str, np.ndarray]:
        blocks: dict[str, list[np.ndarray]] = {name: [] for name in self.input_names}
        dtypes = self._input_dtypes()
        for feature in self.features:
            if feature.name not in frame.columns:
                raise PreprocessingError(
                    f"Column {feature.name!r} is missing; the model was trained with it."
                )
            if feature.type == "image":  # alone in its input: (n, height, width, channels)
                paths = join_image_paths(frame[feature.name], images_dir)
                blocks[feature.input].append(feature.transformer.transform(paths))
                continue
            transformed = feature.transformer.transform(_column_values(frame[feature.name], feature.type))
            if hasattr(transformed, "toarray"):  # TF-IDF and counts output is sparse
                transformed = transformed.toarray()
            blocks[feature.input].append(np.asarray(transformed, dtype=dtypes[feature.input]))
        return {
            name: parts[0] if parts[0].ndim > 2 else np.hstack(parts).astype(dtypes[name], copy=False)
            for name, parts in blocks.items()
        }

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
            "vocabularies": self.vocabularies,
            "features": [_describe_feature(feature) for feature in self.features],
        } | (
            {
                "extra_targets": [
                    {
                        "target": extra.target,
                        "prediction_type": extra.prediction_type,
                        "classes": extra.classes,
                        "target_rescaling": None
                        if extra.target_scaling is None
                        else asdict(extra.target_scaling),
                    }
                    for extra in self.extra_targets
                ]
            }
            if getattr(self, "extra_targets", None)
            else {}
        )


def read_dataset(
    path: str | os.PathLike[str] | IO[str],
    features: list[dict[str, Any]],
    target: str,
    prediction_type: str,
    format: str = "csv",
    sampling: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Read the dataset with categorical and text columns (and a class target) kept as text.

    ``sampling`` (the split's): ``{"method": "all"}`` (the default), ``{"method": "head", "rows":
    N}`` (the first N rows: Parquet reads only the row groups holding them, CSV stops after N rows)
    or ``{"method": "random", "rows": N, "seed": S}`` (N rows drawn without replacement, kept in file
    order, the same rows for a given seed whatever the format; Parquet holds one row group at a time
    beyond the sample, CSV is read whole first). N at least the row count means every row.
    """
    as_text = {spec["name"] for spec in features if spec.get("type") in ("categorical", "text", "date")}
    if prediction_type != "regression":
        as_text.add(target)
    sampling = sampling or {}
    method = sampling.get("method", "all")
    if method not in ("all", "head", "random"):
        raise PreprocessingError(f'Sampling method {method!r} is unknown; use "all", "head" or "random".')
    if method != "all" and (not isinstance(sampling.get("rows"), int) or sampling["rows"] < 1):
        raise PreprocessingError(f"Sampling {method!r} needs a whole number of rows of at least 1.")
    if format == "parquet":
        frame = read_columns(path, as_text=as_text, format="parquet", sampling=sampling)  # type: ignore[arg-type]
    else:
        nrows = sampling["rows"] if method == "head" else None
        frame = pd.read_csv(path, dtype=dict.fromkeys(as_text, object), low_memory=False, nrows=nrows)
        if method == "random":
            positions = sample_positions(len(frame), sampling["rows"], int(sampling.get("seed", 1337)))
            if positions is not None:
                frame = frame.iloc[positions].reset_index(drop=True)
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


def split_positions(
    frame: pd.DataFrame, target: str, prediction_type: str, split: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the train and test rows of a random split, stratified on the target for
    classification when asked. Positions, not copies: the frame is taken a column or a chunk at a
    time later. (The explicit-test-dataset split has no positions: the whole frame is train.)"""
    train_ratio = float(split.get("train_ratio", 0.8))
    if not 0 < train_ratio < 1:
        raise PreprocessingError(f"The train ratio must be between 0 and 1 (exclusive); got {train_ratio}.")
    seed = int(split.get("seed", 1337))
    positions = np.arange(len(frame))
    stratify = None
    if prediction_type != "regression" and split.get("stratify", True):
        stratify = frame[target].map(_label_key).to_numpy()
    try:
        train, test = train_test_split(
            positions, train_size=train_ratio, random_state=seed, stratify=stratify
        )
    except ValueError as exc:
        if stratify is None:
            raise PreprocessingError(f"Could not split {len(frame)} rows into train and test: {exc}") from exc
        # A class too rare to be in both splits: a plain random split still lets training run.
        warnings.warn(f"Stratified split impossible ({exc}); using a plain random split.", stacklevel=2)
        train, test = train_test_split(positions, train_size=train_ratio, random_state=seed)
    return train, test


def split_train_test(
    frame: pd.DataFrame,
    target: str,
    prediction_type: str,
    split: dict[str, Any],
    test_frame: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`split_positions` as two frames (copies).

    With ``split["mode"] == "explicit"`` the whole ``frame`` is the train split and ``test_frame``
    (read from the explicit test dataset, holding the input features and the target) the test split.
    """
    if split.get("mode", "random") == "explicit":
        if test_frame is None:
            raise PreprocessingError("The split names an explicit test dataset, but none was provided.")
        return frame, test_frame
    train, test = split_positions(frame, target, prediction_type, split)
    return frame.iloc[train], frame.iloc[test]


def _fit_feature(column: pd.Series, spec: dict[str, Any]) -> FittedFeature:
    name, feature_type = spec["name"], spec.get("type")
    handling = dict(spec.get("handling") or {})
    if feature_type not in FEATURE_TYPES:
        raise PreprocessingError(
            f"Feature {name!r} has type {feature_type!r}; expected one of {FEATURE_TYPES}. Fix its type."
        )
    values = _column_values(column, feature_type)
    encoding = handling.get("encoding")
    if feature_type == "numeric":
        transformer, columns = _numeric_transformer(name, handling), [name]
    elif feature_type == "categorical" and encoding in (None, "dummy"):
        levels = _top_levels(values[:, 0], _option(name, handling, "max_levels", 100, 1))
        transformer = OneHotEncoder(
            categories=[levels], handle_unknown="ignore", sparse_output=False, dtype=np.float32
        )
        columns = [f"{name}={level}" for level in levels]
    elif feature_type == "categorical" and encoding == "index":
        defaults = default_feature_handling("categorical", "index")
        transformer = IndexEncoder(_option(name, handling, "max_levels", defaults["max_levels"], 1))
        columns = [name]
    elif feature_type == "text" and encoding in (None, "tfidf", "counts"):
        vectorizer = CountVectorizer if encoding == "counts" else TfidfVectorizer
        transformer = vectorizer(
            max_features=_option(name, handling, "max_features", 200, 1),
            ngram_range=(1, _option(name, handling, "ngram_max", 1, 1)),
            dtype=np.float32,
        )
        columns = []
    elif feature_type == "text" and encoding == "sequence":
        defaults = default_feature_handling("text", "sequence")
        transformer = SequenceEncoder(
            _option(name, handling, "vocabulary_size", defaults["vocabulary_size"], FIRST_ID),
            _option(name, handling, "sequence_length", defaults["sequence_length"], 1),
        )
        columns = [f"{name}[{position}]" for position in range(transformer.sequence_length)]
    elif feature_type == "date":
        components = _date_components(name, handling)
        transformer = Pipeline(
            [
                ("components", DateComponents(components)),
                # keep_empty_features: a component missing on every train row still yields its column.
                ("impute", SimpleImputer(strategy="mean", keep_empty_features=True)),
                ("rescale", StandardScaler()),
            ]
        )
        columns = [f"{name}:{component}" for component in components]
    else:
        accepted = CATEGORICAL_ENCODINGS if feature_type == "categorical" else TEXT_ENCODINGS
        raise PreprocessingError(
            f"The {feature_type} feature {name!r} has encoding {encoding!r}; use one of {accepted}."
        )
    try:
        transformer.fit(values)
    except ValueError as exc:  # e.g. TF-IDF on a column with no words at all
        raise PreprocessingError(f"Could not fit the {feature_type} handling of {name!r}: {exc}") from exc
    if isinstance(transformer, CountVectorizer):  # TfidfVectorizer is one too
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


def _option(name: str, handling: dict[str, Any], option: str, default: int, low: int) -> int:
    """A whole-number option; the web validates bounds, this guards jobs written by other means."""
    value = handling.get(option, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < low:
        raise PreprocessingError(
            f"Feature {name!r}: {option} must be a whole number of at least {low}; got {value!r}."
        )
    return int(value)


def _date_components(name: str, handling: dict[str, Any]) -> list[str]:
    """The chosen components in their canonical order (a stable column order whatever the list's)."""
    chosen = handling.get("components", list(DATE_COMPONENTS))
    if (
        not isinstance(chosen, list | tuple)
        or not chosen
        or any(component not in DATE_COMPONENTS for component in chosen)
    ):
        raise PreprocessingError(
            f"Date feature {name!r}: components must be a non-empty list of {', '.join(DATE_COMPONENTS)}; "
            f"got {chosen!r}."
        )
    return [component for component in DATE_COMPONENTS if component in chosen]


def _check_integer_inputs(specs: list[dict[str, Any]]) -> None:
    """An integer-encoded feature must be alone in its input: an Embedding takes one integer input."""
    by_input: dict[str, list[dict[str, Any]]] = {}
    for spec in specs:
        by_input.setdefault(spec.get("input") or DEFAULT_INPUT, []).append(spec)
    for input_name, members in by_input.items():
        integer = [s["name"] for s in members if is_integer_encoded(s.get("type"), s.get("handling"))]
        if integer and len(members) > 1:
            raise PreprocessingError(
                f"Input {input_name!r} receives the features {[s['name'] for s in members]}, of which "
                f"{integer} are integer ids for an Embedding layer (categorical index or text sequence "
                "encoding). Such a feature needs a model input of its own: in the Features handling, "
                f"set the input of {integer[0]!r} to a new name such as {integer[0] + '_ids'!r}."
            )


def _check_image_inputs(specs: list[dict[str, Any]]) -> None:
    """An image feature must be alone in its input: (height, width, channels) joins no other column."""
    by_input: dict[str, list[dict[str, Any]]] = {}
    for spec in specs:
        by_input.setdefault(spec.get("input") or DEFAULT_INPUT, []).append(spec)
    for input_name, members in by_input.items():
        images = [s["name"] for s in members if s.get("type") == "image"]
        if images and len(members) > 1:
            suggestion = re.sub(r"\W+", "_", images[0]) + "_image"
            raise PreprocessingError(
                f"Input {input_name!r} receives the features {[s['name'] for s in members]}, of which "
                f"{images} are images (height, width, channels). An image needs a model input of its "
                f"own: in the Features handling, set the input of {images[0]!r} to a new name such as "
                f"{suggestion!r}."
            )


def take(column: pd.Series, rows: np.ndarray | None) -> pd.Series:
    """The values of ``column`` at positions ``rows`` (the column itself when None)."""
    return column if rows is None else column.iloc[rows]


def join_image_paths(column: pd.Series, images_dir: str | os.PathLike[str] | None) -> pd.Series:
    """File names of an image column as paths under ``images_dir`` (unchanged when None)."""
    if images_dir is None:
        return column
    return pd.Series(
        [None if pd.isna(value) else os.path.join(images_dir, str(value)) for value in column],
        index=column.index,
        dtype=object,
    )


def check_image_folder(features: list[dict[str, Any]], images_dir: str | os.PathLike[str] | None) -> None:
    """Image input features need the dataset's image folder (an image zip upload makes one)."""
    columns = [s["name"] for s in features if s.get("role") == "input" and s.get("type") == "image"]
    if columns and images_dir is None:
        raise PreprocessingError(
            f"Feature(s) {columns} are images, but the dataset has no image folder. Upload the images "
            "as a zip (with a CSV index, or one folder per class), or change the features' type."
        )


def _fit_image(column: pd.Series, spec: dict[str, Any], code: str) -> FittedFeature:
    name = spec["name"]
    handling = {**default_feature_handling("image"), **dict(spec.get("handling") or {})}
    loader = handling.get("loader", "default")
    if loader == "custom":
        handling = {"loader": "custom"}
        if not code.strip():
            raise PreprocessingError(
                f"Image feature {name!r} uses the custom loader, but the Preprocessing tab is empty. "
                "Write def preprocess_image(path): returning a numpy array there."
            )
        transformer = ImageLoader(name, "custom", code=code)
    elif loader == "default":
        channels = _option(name, handling, "channels", 3, 1)
        if channels not in (1, 3, 4):
            raise PreprocessingError(
                f"Image {name!r}: channels must be 1 (grayscale), 3 (RGB) or 4 (RGBA): not {channels}."
            )
        transformer = ImageLoader(
            name,
            "default",
            height=_option(name, handling, "height", 32, 1),
            width=_option(name, handling, "width", 32, 1),
            channels=channels,
            scale=bool(handling.get("scale", True)),
        )
    else:
        raise PreprocessingError(
            f"Image feature {name!r}: loader {loader!r} is unknown; use default or custom."
        )
    transformer.fit(column.to_numpy())
    return FittedFeature(
        name=name,
        type="image",
        input=spec.get("input") or DEFAULT_INPUT,
        handling=handling,
        transformer=transformer,
        output_columns=[name],
    )


class ImageLoader(BaseEstimator, TransformerMixin):
    """Image paths to a float32 array (n, height, width, channels).

    ``default``: decoded (Pillow when installed, else TensorFlow), converted to ``channels``,
    resized to height × width, divided by 255 when ``scale``. ``custom``: the user's
    ``preprocess_image(path)`` of the Preprocessing tab, which must give every image the same shape
    (fitting records the first image's). A row without an image gets zeros. Only the code is
    pickled, not the function: it is compiled again when a loaded ImageLoader first transforms.
    """

    def __init__(
        self,
        feature: str = "image",
        loader: str = "default",
        height: int = 32,
        width: int = 32,
        channels: int = 3,
        scale: bool = True,
        code: str = "",
    ) -> None:
        self.feature, self.loader, self.code = feature, loader, code
        self.height, self.width, self.channels, self.scale = height, width, channels, scale

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_function"}

    def fit(self, paths: np.ndarray, y: Any = None) -> ImageLoader:
        if self.loader == "default":
            self.shape_ = (self.height, self.width, self.channels)
        else:
            self.shape_ = None
            first = next((p for p in paths if isinstance(p, str)), None)
            if first is None:
                raise PreprocessingError(f"Image feature {self.feature!r} names no image in the train split.")
            self.shape_ = tuple(self._load(first).shape)
            self.first_image_ = os.path.basename(first)
        return self

    def transform(self, paths: np.ndarray | pd.Series) -> np.ndarray:
        """Paths to images; a missing one (None or NaN) gives an image of zeros."""
        out = np.empty((len(paths), *self.shape_), dtype=np.float32)
        for row, path in enumerate(np.asarray(paths, dtype=object)):
            if not isinstance(path, str):  # a missing image: all zeros, as a missing number is imputed
                out[row] = 0
                continue
            image = self._load(path)
            if image.shape != self.shape_:
                self._differs(path, image.shape)
            out[row] = image
        return out

    def _load(self, path: str) -> np.ndarray:
        if self.loader == "custom":
            return self._custom(path)
        try:
            return decode_image(path, self.height, self.width, self.channels, self.scale)
        except FileNotFoundError:
            raise PreprocessingError(f"Image feature {self.feature!r}: image {path} is missing.") from None
        except Exception as exc:
            raise PreprocessingError(
                f"Image feature {self.feature!r}: image {os.path.basename(path)} is not decodable ({exc})."
            ) from None

    def _custom(self, path: str) -> np.ndarray:
        from training_worker.usercode import (  # runner only: user code
            UserCodeError,
            call_user_function,
            compile_tab,
            execute_tab,
            user_function,
        )

        function = getattr(self, "_function", None)
        if function is None:
            code = compile_tab(self.code, "preprocessing", "preprocessing")
            namespace = execute_tab(code, "preprocessing", "preprocessing", {"np": np})
            function = user_function(
                namespace, "preprocess_image", "(path)", "preprocessing", "preprocessing"
            )
            self._function = function
        result = call_user_function(
            function,
            (path,),
            "preprocessing",
            expected=f"preprocess_image(path) failed on the image {os.path.basename(path)}.",
        )
        try:
            return np.asarray(result, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise UserCodeError(
                phase="preprocessing",
                tab="preprocessing",
                line=function.__code__.co_firstlineno,
                message=(
                    f"preprocess_image({os.path.basename(path)!r}) returned {type(result).__name__}, not an "
                    f"array of numbers ({exc}). Return a numpy array such as np.asarray(...)."
                ),
            ) from None

    def _differs(self, path: str, shape: tuple[int, ...]) -> None:
        from training_worker.usercode import UserCodeError

        function = getattr(self, "_function", None)
        raise UserCodeError(
            phase="preprocessing",
            tab="preprocessing",
            line=None if function is None else function.__code__.co_firstlineno,
            message=(
                f"preprocess_image returned shape {shape} for the image {os.path.basename(path)}, but "
                f"{self.shape_} for {getattr(self, 'first_image_', 'the first image')}. All images must "
                "give the same shape: resize or crop them to one size in preprocess_image."
            ),
        )


def decode_image(path: str, height: int, width: int, channels: int, scale: bool) -> np.ndarray:
    """One image as float32 (height, width, channels), values in [0, 1] when ``scale`` else [0, 255]."""
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is not None:
        with Image.open(path) as image:
            converted = image.convert({1: "L", 3: "RGB", 4: "RGBA"}[channels])
            if converted.size != (width, height):
                converted = converted.resize((width, height), Image.BILINEAR)
            array = np.asarray(converted, dtype=np.float32).reshape(height, width, channels)
    else:
        import tensorflow as tf  # the runner has it; the web process never decodes images

        with open(path, "rb") as handle:
            data = handle.read()
        tensor = tf.io.decode_image(data, channels=channels, expand_animations=False)
        if tuple(tensor.shape[:2]) != (height, width):
            tensor = tf.image.resize(tensor, (height, width))
        array = np.asarray(tensor, dtype=np.float32)
    return array / 255.0 if scale else array


class IndexEncoder(BaseEstimator, TransformerMixin):
    """Categorical levels (as from ``_column_values``) to one int32 column of ids for an Embedding.

    0 is missing, 1 any level not among the ``max_levels`` most frequent in train (rare or unseen),
    then the kept levels from 2 by decreasing train frequency, ties broken by the level itself.
    """

    def __init__(self, max_levels: int = 1000) -> None:
        self.max_levels = max_levels

    def fit(self, values: np.ndarray, y: Any = None) -> IndexEncoder:
        column = values[:, 0]
        counts = pd.Series(column[column != MISSING_LEVEL], dtype=object).value_counts()
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        self.levels_: list[str] = [level for level, _ in ranked[: self.max_levels]]
        self.ids_ = {level: FIRST_ID + position for position, level in enumerate(self.levels_)}
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        column = pd.Series(values[:, 0], dtype=object)
        ids = column.map(self.ids_).fillna(OTHERS_ID).to_numpy(dtype=np.int32)
        ids[(column == MISSING_LEVEL).to_numpy()] = MISSING_ID
        return ids.reshape(-1, 1)


def tokenize(text: str) -> list[str]:
    """The sequence encoding's tokens: lowercased runs of word characters, nothing locale-dependent."""
    return TOKEN_PATTERN.findall(text.lower())


class SequenceEncoder(BaseEstimator, TransformerMixin):
    """Texts to int32 token-id rows of ``sequence_length``, for an Embedding (and then an LSTM or pooling).

    0 pads the end of short texts (long ones keep their first tokens), 1 is a token outside the
    vocabulary, then the ``vocabulary_size - 2`` most frequent train tokens from 2 (ties by token).
    """

    def __init__(self, vocabulary_size: int = 10_000, sequence_length: int = 100) -> None:
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length

    def fit(self, values: np.ndarray, y: Any = None) -> SequenceEncoder:
        counts: Counter[str] = Counter()
        for text in values:
            counts.update(tokenize(text))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        self.vocabulary_: list[str] = [token for token, _ in ranked[: self.vocabulary_size - FIRST_ID]]
        self.ids_ = {token: FIRST_ID + position for position, token in enumerate(self.vocabulary_)}
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        ids = np.full((len(values), self.sequence_length), MISSING_ID, dtype=np.int32)
        for row, text in enumerate(values):
            tokens = tokenize(text)[: self.sequence_length]
            ids[row, : len(tokens)] = [self.ids_.get(token, OTHERS_ID) for token in tokens]
        return ids


class DateComponents(BaseEstimator, TransformerMixin):
    """Parsed dates (datetime64, NaT for missing) to float components, NaN where the date is missing."""

    def __init__(self, components: list[str] | None = None) -> None:
        self.components = components

    def fit(self, values: np.ndarray, y: Any = None) -> DateComponents:
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        stamps = pd.DatetimeIndex(values[:, 0])
        missing = stamps.isna()
        # Whole seconds, not pandas' nanoseconds: a year-1 date would overflow those.
        seconds = np.asarray(values[:, 0], dtype="datetime64[s]").astype(np.int64).astype(np.float64)
        parts = {
            "year": stamps.year,
            "month": stamps.month,
            "day": stamps.day,
            "weekday": stamps.day_of_week,
            "hour": stamps.hour,
            "timestamp": seconds / 86_400.0,
        }
        chosen = self.components or list(DATE_COMPONENTS)
        result = np.column_stack([np.asarray(parts[c], dtype=np.float64) for c in chosen])
        result[missing] = np.nan
        return result


def parse_dates(column: pd.Series) -> np.ndarray:
    """Dates as naive UTC datetime64 (NaT where missing or unparsable), whatever the column holds."""
    if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(column):
        parsed = pd.to_datetime(column, utc=True)
    else:
        # As text: numbers would otherwise be read as nanoseconds since 1970.
        text = pd.Series(
            [str(value) if pd.notna(value) else None for value in column], index=column.index, dtype=object
        )
        parsed = pd.to_datetime(text, format="mixed", errors="coerce", utc=True)
    return parsed.dt.tz_convert(None).to_numpy()


def _column_values(column: pd.Series, feature_type: str | None) -> np.ndarray:
    """The column in the form its transformer expects (plain numpy, whatever pandas' dtypes)."""
    if feature_type == "date":
        return parse_dates(column).reshape(-1, 1)
    if feature_type == "numeric":
        return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64).reshape(-1, 1)
    if feature_type == "categorical":
        text = column.astype(object).where(column.notna(), MISSING_LEVEL)
        return np.asarray([str(value) for value in text], dtype=object).reshape(-1, 1)
    # text: the vectorizers and SequenceEncoder take a 1-D sequence of strings
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
    elif isinstance(transformer, OneHotEncoder):
        description["encoding"] = "dummy"
        description["levels"] = [str(level) for level in transformer.categories_[0]]
    elif isinstance(transformer, IndexEncoder):
        description["encoding"] = "index"
        description["levels"] = list(transformer.levels_)  # the level at position i has id i + 2
        description["reserved_ids"] = {str(MISSING_ID): "missing", str(OTHERS_ID): "others (rare or unseen)"}
        description["embedding_input_dim"] = feature.embedding_input_dim
    elif isinstance(transformer, CountVectorizer):
        description["encoding"] = "tfidf" if isinstance(transformer, TfidfVectorizer) else "counts"
        description["ngram_range"] = list(transformer.ngram_range)
        description["vocabulary_size"] = len(feature.output_columns)
    elif isinstance(transformer, SequenceEncoder):
        description["encoding"] = "sequence"
        # Words only; the handling's vocabulary_size counts the two reserved ids as well.
        description["words"] = len(transformer.vocabulary_)
        description["embedding_input_dim"] = feature.embedding_input_dim
        description["sequence_length"] = transformer.sequence_length
        description["reserved_ids"] = {str(MISSING_ID): "padding", str(OTHERS_ID): "out of vocabulary"}
        description["most_frequent_tokens"] = transformer.vocabulary_[:20]  # from id 2
        del description["output_columns"]  # one per position: says nothing the length does not
    elif feature.type == "date":
        scaler = transformer.named_steps["rescale"]
        description["components"] = transformer.named_steps["components"].components
        description["mean"] = [float(value) for value in scaler.mean_]
        description["scale"] = [float(value) for value in scaler.scale_]
    return description
