"""A session's model as a bundle that works outside DL Studio (``GET /api/sessions/{id}/export/``).

The zip (``session-<id>/...``) holds the saved ``model.keras``, the fitted ``preprocessing.joblib``
(and its readable ``preprocessing.json``), the Architecture code (``architecture.py``: custom
layers and Lambda functions that loading the model needs), the platform modules unpickling the
preprocessing imports (copied under their own ``training_worker/`` path so joblib finds them),
``predict.py`` (``predict(frame) -> DataFrame``, and a command line), pinned ``requirements.txt``
and ``README.txt``. Nothing is loaded or unpickled here: the files are copied as stored.
"""

from __future__ import annotations

import ast
import json
import os
import stat
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path
from typing import IO

from analyses.models import Session
from training_worker.scoring_runs import model_files

PACKAGE = Path(__file__).resolve().parent.parent / "training_worker"
# What predict.py imports; the modules these import (from training_worker) are found and added.
ROOT_MODULES = ("preprocessing", "prediction_table", "user_api", "arrays")
# Each entry: the first of its names that is installed here (TensorFlow may be the CPU build).
REQUIREMENTS = (
    ("keras",),
    ("tensorflow", "tensorflow-cpu"),
    ("numpy",),
    ("pandas",),
    ("scikit-learn",),
    ("scipy",),
    ("joblib",),
    ("pyarrow",),
    ("h5py",),
    ("pillow",),  # image features with the default loader
)
CHUNK = 1024**2


def platform_modules() -> list[str]:
    """The training_worker modules the bundle needs: ROOT_MODULES and, transitively, what they import
    from training_worker (at any depth in the module, as a lazy import runs too)."""
    needed: list[str] = []
    queue = list(ROOT_MODULES)
    while queue:
        name = queue.pop()
        if name in needed:
            continue
        needed.append(name)
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("training_worker."):
                    queue.append(node.module.split(".", 1)[1])
                elif node.module == "training_worker":
                    queue += [alias.name for alias in node.names if (PACKAGE / f"{alias.name}.py").is_file()]
            elif isinstance(node, ast.Import):
                queue += [
                    a.name.split(".", 1)[1] for a in node.names if a.name.startswith("training_worker.")
                ]
    return sorted(needed)


def requirements() -> str:
    """Pinned versions of what the bundle imports, as installed on this platform."""
    lines = []
    for names in REQUIREMENTS:
        for name in names:
            try:
                lines.append(f"{name}=={metadata.version(name)}")
                break
            except metadata.PackageNotFoundError:
                continue
    return "\n".join(lines) + "\n"


def export_bundle(session: Session) -> IO[bytes]:
    """A temporary file holding the zip, positioned at its start (NoModel when there is none)."""
    files = model_files(session)
    design = session.design or {}
    folder = f"session-{session.pk}"
    archive = tempfile.TemporaryFile()  # noqa: SIM115 -- handed to the response, which closes it
    try:
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for path in files.values():
                _copy(bundle, path, f"{folder}/{path.name}")
            description = files["preprocessing"].with_name("preprocessing.json")
            if description.is_file() and not description.is_symlink():
                _copy(bundle, description, f"{folder}/preprocessing.json")
            bundle.writestr(f"{folder}/architecture.py", design.get("architecture_code", ""))
            bundle.writestr(f"{folder}/training_worker/__init__.py", (PACKAGE / "__init__.py").read_text())
            for module in platform_modules():
                bundle.writestr(
                    f"{folder}/training_worker/{module}.py", (PACKAGE / f"{module}.py").read_text()
                )
            bundle.writestr(f"{folder}/predict.py", predict_script(session))
            bundle.writestr(f"{folder}/requirements.txt", requirements())
            bundle.writestr(f"{folder}/README.txt", readme(session))
        archive.seek(0)
    except BaseException:
        archive.close()
        raise
    return archive


def _copy(bundle: zipfile.ZipFile, path: Path, member: str) -> None:
    # O_NOFOLLOW: a file the runner swapped for a link is refused, never followed.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as source:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path.name} is not a regular file")
        with bundle.open(member, "w") as target:
            while chunk := source.read(CHUNK):
                target.write(chunk)


def _what(session: Session) -> str:
    design = session.design or {}
    targets = [t["name"] for t in design.get("targets") or []] or [design.get("target", "?")]
    return f"{', '.join(targets)} ({design.get('prediction_type', '?')})"


def predict_script(session: Session) -> str:
    batch_size = int(((session.design or {}).get("training") or {}).get("batch_size") or 32)
    return (
        PREDICT_PY.replace("{session}", str(session.pk))
        .replace("{what}", _what(session))
        .replace("{batch_size}", json.dumps(batch_size))
    )


def readme(session: Session) -> str:
    return README.replace("{session}", str(session.pk)).replace("{what}", _what(session))


PREDICT_PY = '''"""DL Studio session {session}'s model, predicting {what}, outside DL Studio.

From Python (this folder as the working directory, or on sys.path):

    import pandas as pd
    from predict import predict
    predictions = predict(pd.read_csv("rows.csv"))   # one row of predictions per input row

From a shell: python predict.py rows.csv [predictions.csv]   (standard output without a file)

The input needs the columns the model was trained on (others are ignored). Rows go through the
preprocessing fitted in training (preprocessing.joblib), then the model (model.keras). The columns
are named as in the session's predictions.csv: prediction, and proba_<label> per class for a
classifier (per target, "(target)" appended, for a multi-output model).
"""

from __future__ import annotations

import os
import sys
import tempfile
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the DL Studio modules the preprocessing needs are next to this file
    sys.path.insert(0, str(HERE))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import joblib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from training_worker.arrays import ArrayStore  # noqa: E402
from training_worker.prediction_table import prediction_frame, text_columns  # noqa: E402

BATCH_SIZE = {batch_size}
_loaded = None


def load():
    """(model, preprocessing), loaded once. architecture.py runs first: what it defines (custom
    layers, Lambda functions) is what Keras needs to rebuild the model."""
    global _loaded
    if _loaded is None:
        import keras

        from training_worker import user_api

        preprocessing = joblib.load(HERE / "preprocessing.joblib")
        bindings = {"keras": keras, "np": np, **user_api.bindings()}
        namespace = {"__name__": "architecture", **bindings}
        source = (HERE / "architecture.py").read_text()
        exec(compile(source, str(HERE / "architecture.py"), "exec"), namespace)
        custom = {
            name: value
            for name, value in namespace.items()
            if not name.startswith("__")
            and name not in bindings
            and not isinstance(value, types.ModuleType)
            and (isinstance(value, type) or callable(value))
        }
        # safe_mode=False: Lambda layers keep your own code in the file.
        model = keras.saving.load_model(
            HERE / "model.keras", custom_objects=custom, compile=False, safe_mode=False
        )
        _loaded = (model, preprocessing)
    return _loaded


def predict(frame: pd.DataFrame) -> pd.DataFrame:
    """The prediction columns for the rows of ``frame`` (same index)."""
    model, preprocessing = load()
    missing = [f.name for f in preprocessing.features if f.name not in frame.columns]
    if missing:
        raise KeyError(f"the input lacks the column(s) {missing} the model was trained with")
    text = text_columns(preprocessing.features)
    columns = {}
    for feature in preprocessing.features:
        column = frame[feature.name]
        if feature.name in text:  # as DL Studio reads them: text, missing values kept missing
            column = column.astype(object).where(column.isna(), column.map(str))
        columns[feature.name] = column.reset_index(drop=True)
    rows = pd.DataFrame(columns)
    with tempfile.TemporaryDirectory() as scratch:
        inputs = preprocessing.transform_rows(rows, store=ArrayStore(scratch))
        x = inputs[next(iter(inputs))] if len(inputs) == 1 else dict(inputs)
        output = model.predict(x, batch_size=BATCH_SIZE, verbose=0)
    result = prediction_frame(preprocessing, output, list(model.output_names))
    result.index = frame.index
    return result


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print("usage: python predict.py rows.csv [predictions.csv]", file=sys.stderr)
        return 2
    _model, preprocessing = load()
    text = text_columns(preprocessing.features)
    frame = pd.read_csv(argv[0], dtype=dict.fromkeys(text, str))  # text columns as written
    predict(frame).to_csv(argv[1] if len(argv) > 1 else sys.stdout, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''

README = """DL Studio session {session}: a model predicting {what}, to use outside DL Studio.

Files
  model.keras            the trained Keras model (Keras 3 format)
  preprocessing.joblib   the preprocessing fitted on the training split (scikit-learn transformers);
                         preprocessing.json describes it
  architecture.py        the session's Architecture code: loading the model runs it first, so the
                         custom layers and functions it defines are found
  training_worker/       the DL Studio modules the preprocessing needs (unpickling imports them)
  predict.py             predict(frame: pandas.DataFrame) -> pandas.DataFrame, and a command line
  requirements.txt       the package versions the model was saved with

Use
  python -m venv .venv && .venv/bin/pip install -r requirements.txt
  .venv/bin/python predict.py rows.csv predictions.csv

  or, in Python, from this folder:
      import pandas as pd
      from predict import predict
      predictions = predict(pd.read_csv("rows.csv"))

The input needs the columns the model was trained on (an image column: paths to the image files);
the output has one row per input row: prediction, and proba_<label> per class for a classifier,
as in the session's predictions.csv.
Loading runs architecture.py and the model's Lambda code (safe_mode=False): it is the code of
this session; only load bundles you trust.
"""
