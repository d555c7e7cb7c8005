"""The trust boundary of scoring: what the sandboxed scorer writes is checked before any use (column
names, types, class labels) and its progress lines are validated like every runner event."""

from __future__ import annotations

import pyarrow as pa
import pytest

from training_worker.events import BadEvent, encode_event, parse_event
from training_worker.scoring_runs import ScoringFailed, checked_batch

BINARY = [("target", ["benign", "malignant"])]


def table(**columns) -> pa.Table:
    return pa.table(columns)


def test_a_well_formed_output_is_cast_to_its_types():
    checked = checked_batch(
        table(prediction=["benign", "malignant"], proba_benign=[0.9, 0.2], proba_malignant=[0.1, 0.8]), BINARY
    )
    assert checked.schema.types == [pa.string(), pa.float64(), pa.float64()]
    regression = checked_batch(table(prediction=[1, 2]), [("price", None)])
    assert regression.column("prediction").type == pa.float64()
    multi = checked_batch(
        table(
            **{"prediction (a)": [1.5], "prediction (b)": ["x"], "proba_x (b)": [1.0], "proba_y (b)": [0.0]}
        ),
        [("a", None), ("b", ["x", "y"])],
    )
    assert multi.column_names == ["prediction (a)", "prediction (b)", "proba_x (b)", "proba_y (b)"]


@pytest.mark.parametrize(
    "columns, why",
    [
        ({"prediction": ["benign"], "proba_benign": [1.0]}, "columns"),  # a class's probability missing
        ({"prediction": ["cat"], "proba_benign": [1.0], "proba_malignant": [0.0]}, "outside the classes"),
        ({"prediction": ["benign"], "proba_benign": ["high"], "proba_malignant": [0.0]}, "wrong type"),
        ({"proba_benign": [1.0], "prediction": ["benign"], "proba_malignant": [0.0]}, "columns"),  # order
    ],
)
def test_anything_else_is_refused(columns, why):
    with pytest.raises(ScoringFailed, match=why) as refused:
        checked_batch(table(**columns), BINARY)
    assert refused.value.error["phase"] == "runner"


def test_scored_events_are_validated():
    assert parse_event(encode_event({"type": "scored", "rows": 10, "of": 569}))["rows"] == 10
    for bad in ({"rows": -1, "of": 5}, {"rows": "10", "of": 5}, {"rows": True, "of": 5}, {"rows": 1}):
        with pytest.raises(BadEvent):
            parse_event(encode_event({"type": "scored", **bad}))
