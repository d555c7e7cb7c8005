"""Real datasets nobody here wrote, from installed packages, shared by the tests.

scikit-learn ships the Titanic passenger list (OpenML 40945, for its own fetch_openml tests) with
real missing values and categorical columns; its wine data becomes a small text dataset.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pandas as pd
import sklearn
from sklearn.datasets import load_wine
from sklearn.externals import _arff

OPENML = Path(sklearn.__file__).parent / "datasets" / "tests" / "data" / "openml"


def titanic() -> pd.DataFrame:
    """1309 passengers; age, fare, cabin, embarked, boat, body and home.dest have missing values."""
    path = next((OPENML / "id_40945").glob("data-v1-dl-*.arff.gz"))
    with gzip.open(path, "rt") as handle:
        arff = _arff.load(handle)
    return pd.DataFrame(arff["data"], columns=[name for name, _ in arff["attributes"]])


def wine_reviews() -> pd.DataFrame:
    """A deterministic text classification frame from scikit-learn's wine data (178 rows, 3 classes).

    Each of the 13 measurements becomes a word by its tercile (``alcohol_high``, ``hue_low``...),
    joined into a ``tasting`` note; ``proline`` by quintile becomes the categorical ``band``.
    Every 17th note and every 13th band is missing.
    """
    bunch = load_wine(as_frame=True)
    frame = bunch.frame
    words = pd.DataFrame(
        {
            re.sub(r"\W+", "_", name): pd.qcut(frame[name], 3, labels=["low", "mid", "high"]).astype(str)
            for name in bunch.feature_names
        }
    )
    notes = [" ".join(f"{name}_{level}" for name, level in row.items()) for _, row in words.iterrows()]
    band = pd.qcut(frame["proline"], 5, labels=[f"band{i}" for i in range(5)]).astype(str)
    rows = pd.RangeIndex(len(frame))
    return pd.DataFrame(
        {
            "tasting": pd.Series(notes).where(rows % 17 != 5),
            "band": band.where(rows % 13 != 3),
            "target": frame["target"].map(dict(enumerate(bunch.target_names))),
        }
    )
