"""The work dir and job spec the supervisor prepares: datasets and their image folders.

An explicit test dataset that is an image dataset brings its own folder (linked as ``test_images``):
its index names files of that folder, not of the train dataset's.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analyses.datasets import store_dataset
from analyses.models import Dataset, MLTask, Session
from tests.analyses.test_api import create_mltask
from tests.digits_images import indexed_zip
from training_worker.events import Status
from training_worker.supervisor import prepare_workdir, supervise

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def storage(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "files"
    settings.DATA_DIR = tmp_path / "data"
    return tmp_path


def stored(project, user, tmp_path: Path, filename: str, content: bytes, name: str) -> Dataset:
    path = tmp_path / filename
    path.write_bytes(content)
    return store_dataset(project, path, filename, name, user, path.stat().st_size)


def explicit_session(clients, project, train: Dataset, test: Dataset) -> Session:
    """A queued session of a default ML task on ``train`` (target digit), tested on ``test``."""
    mltask = create_mltask(clients["owner"], project, train, target="digit").json()
    split = {"mode": "explicit", "test_dataset": test.pk}
    response = clients["owner"].patch(
        f"/api/mltasks/{mltask['id']}/",
        {"version": mltask["version"], "split": split},
        content_type="application/json",
    )
    assert response.status_code == 200, response.json()
    design = response.json()["design"]
    return Session.objects.create(mltask=MLTask.objects.get(pk=mltask["id"]), design=design)


def test_an_image_test_dataset_is_linked_as_test_images(clients, project, users, storage):
    train = stored(project, users["owner"], storage, "train.zip", indexed_zip(40), "digits")
    test = stored(project, users["owner"], storage, "test.zip", indexed_zip(12), "holdout")
    workdir = prepare_workdir(explicit_session(clients, project, train, test))

    job = json.loads((workdir / "job.json").read_text())
    assert job["dataset"] == {"path": "dataset.parquet", "format": "parquet", "images": "images"}
    assert job["test_dataset"] == {
        "path": "test_dataset.parquet",
        "format": "parquet",
        "id": test.pk,
        "name": "holdout",
        "images": "test_images",
    }
    assert os.readlink(workdir / "images") == str(train.images_path.resolve())
    assert os.readlink(workdir / "test_images") == str(test.images_path.resolve())
    names = pq.read_table(workdir / "test_dataset.parquet").column("file").to_pylist()
    assert len(names) == 12 and all((workdir / "test_images" / name).is_file() for name in names)


def test_a_test_dataset_without_images_gets_no_image_folder(clients, project, users, storage):
    train = stored(project, users["owner"], storage, "train.zip", indexed_zip(40), "digits")
    csv = "file,digit\n" + "".join(f"img/{n}.png,d{n % 10}\n" for n in range(12))
    test = stored(project, users["owner"], storage, "test.csv", csv.encode(), "names only")
    workdir = prepare_workdir(explicit_session(clients, project, train, test))

    job = json.loads((workdir / "job.json").read_text())
    assert "images" not in job["test_dataset"] and job["test_dataset"]["format"] == "parquet"
    assert not (workdir / "test_images").exists()
    assert sorted(p.name for p in workdir.iterdir()) == [
        "dataset.parquet",
        "images",
        "job.json",
        "output",
        "test_dataset.parquet",
    ]


def test_a_test_dataset_whose_images_are_gone_fails_the_session_saying_so(clients, project, users, storage):
    train = stored(project, users["owner"], storage, "train.zip", indexed_zip(40), "digits")
    test = stored(project, users["owner"], storage, "test.zip", indexed_zip(12), "holdout")
    session = explicit_session(clients, project, train, test)
    shutil.rmtree(test.images_path)

    supervise(session.pk, "test-worker")  # fails before any runner is started

    session.refresh_from_db()
    assert session.status == Status.FAILED
    assert session.error["message"] == (
        "The platform could not start training: the images of dataset 'holdout' are missing from "
        f"storage ({test.images_path})"
    )
