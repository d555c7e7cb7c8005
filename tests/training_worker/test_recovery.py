"""A supervisor that comes back after the reaper failed its session (it was frozen, or cut off from
the database, past SESSION_LOST_AFTER_SECONDS) must not let its runner train on unseen: it kills
the runner and leaves the row as the reaper left it. The real supervisor and runner, in-process."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from analyses.datasets import store_dataset
from analyses.models import MLTask, Session, SessionLog
from tests.analyses.test_api import create_mltask
from tests.digits_images import indexed_zip
from training_worker.events import Status
from training_worker.recovery import fail_lost_sessions
from training_worker.supervisor import supervise

pytestmark = pytest.mark.django_db(transaction=True)  # the supervisor's relay thread writes the console

# A custom image loader runs before TensorFlow's import: the runner is busy with user code in seconds.
STALLING_LOADER = """\
import time


def preprocess_image(path):
    print("loading images", flush=True)
    time.sleep(600)
"""


def processes_on(workdir: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(workdir).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_supervisor_back_after_its_session_was_reaped_kills_its_runner(
    settings, clients, project, users, tmp_path
):
    settings.DATA_DIR = tmp_path / "data"
    settings.MEDIA_ROOT = settings.DATA_DIR / "files"
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    upload = tmp_path / "digits.zip"
    upload.write_bytes(indexed_zip(20))
    dataset = store_dataset(project, upload, "digits.zip", "digits", users["owner"], upload.stat().st_size)
    mltask = create_mltask(clients["owner"], project, dataset, target="digit").json()
    design = mltask["design"]
    design["preprocessing_code"] = STALLING_LOADER
    for feature in design["features"]:
        if feature["type"] == "image":
            feature["handling"] = {"loader": "custom"}
    session = Session.objects.create(mltask=MLTask.objects.get(pk=mltask["id"]), design=design)

    supervisor = threading.Thread(target=supervise, args=(session.pk, "frozen-worker"), daemon=True)
    supervisor.start()
    deadline = time.monotonic() + 60
    while not SessionLog.objects.filter(session=session, text="loading images").exists():
        assert supervisor.is_alive() and time.monotonic() < deadline, Session.objects.get(pk=session.pk).error
        time.sleep(0.1)
    workdir = (settings.DATA_DIR / "sessions" / str(session.pk)).resolve()
    assert processes_on(workdir), "the runner is not running"

    # What the reaper does once the heartbeat is stale (here at once: the threshold is in the future).
    assert fail_lost_sessions(older_than_seconds=-60) == 1
    reaped = time.monotonic()
    supervisor.join(30)

    assert not supervisor.is_alive(), "the supervisor went on supervising a failed session"
    assert time.monotonic() - reaped < 10
    assert processes_on(workdir) == [], "its runner trains on"
    session.refresh_from_db()
    assert session.status == Status.FAILED and session.error["message"].startswith("Worker lost")
