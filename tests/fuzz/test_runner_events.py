"""Random event lines from the runner (which runs user code, so anything can arrive on its event
pipe): `parse_event` refuses what no runner could have sent with BadEvent, and whatever it lets
through the supervisor stores for its own session without an error, never touching another one.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyses.design import default_design
from analyses.models import Analysis, EpochMetric, MLTask, Session
from tests.fuzz.conftest import examples
from training_worker.events import EVENT_TYPES, BadEvent, parse_event
from training_worker.supervisor import Supervision

pytestmark = pytest.mark.django_db

NUMBER = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
)
VALUE = st.recursive(
    NUMBER,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
)
EVENT = st.fixed_dictionaries(
    {"type": st.sampled_from([*EVENT_TYPES, "other"])},
    optional={
        "epoch": NUMBER,
        "batch": NUMBER,
        "of": NUMBER,
        "epochs": NUMBER,
        "seconds": NUMBER,
        "values": st.one_of(VALUE, st.dictionaries(st.text(max_size=300), NUMBER, max_size=20)),
        "keep": st.sampled_from(["best", "last", "worst"]),
        "metric": VALUE,
        "value": NUMBER,
        "status": st.sampled_from(["running", "succeeded", "failed", "interrupted", "bogus"]),
        "phase": VALUE,
        "text": VALUE,
        "summary": VALUE,
        "final_metrics": st.dictionaries(st.text(max_size=10), NUMBER, max_size=3),
        "session": st.integers(),
        "session_id": st.integers(),
    },
)


# What each event type's integers are stored as (an epoch number, a row count): database integers.
COUNTED = {"epoch": ("epoch",), "progress": ("epoch", "batch", "of", "epochs"), "kept": ("epoch",)}


@pytest.fixture
def sessions(project, dataset, users) -> tuple[Session, Session]:
    analysis = Analysis.objects.create(project=project, dataset=dataset, name="a")
    mltask = MLTask.objects.create(
        analysis=analysis,
        target="species",
        prediction_type="multiclass",
        classes=["setosa", "versicolor", "virginica"],
        **default_design(dataset, "species", "multiclass"),
    )
    mine, other = (
        Session.objects.create(
            mltask=mltask, design=mltask.design(), created_by=users["owner"], status="running"
        )
        for _ in range(2)
    )
    EpochMetric.objects.create(session=other, epoch=1, seconds=1.0, values={"Test Accuracy": 0.5})
    return mine, other


def test_forged_events_are_refused_or_stored_for_their_own_session(sessions) -> None:
    mine, other = sessions
    supervision = Supervision.__new__(Supervision)  # only the event handling, no runner
    supervision.session_id, supervision.done = mine.pk, None

    @settings(max_examples=examples(150))
    @given(event=EVENT)
    def fuzz(event) -> None:
        line = json.dumps(event).encode()
        try:
            parsed = parse_event(line)
        except BadEvent:
            return
        for key in COUNTED.get(parsed["type"], ()):
            if parsed.get(key) is not None:
                assert isinstance(parsed[key], int) and 0 <= parsed[key] < 2**31, parsed
        supervision._handle_line(line)  # stored without an error (the database's limits hold)

    fuzz()
    assert list(EpochMetric.objects.filter(session=other).values_list("epoch", "values")) == [
        (1, {"Test Accuracy": 0.5})
    ]
