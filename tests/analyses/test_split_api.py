"""The split settings through the API: random or an explicit test dataset, sampling, named errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyses.datasets import store_dataset
from analyses.models import MLTask, Project
from tests.analyses.test_api import create_mltask
from tests.conftest import IRIS_CSV

pytestmark = pytest.mark.django_db


def stored(project, users, tmp_path: Path, name: str, text: str):
    path = tmp_path / f"{name}.csv"
    path.write_text(text)
    return store_dataset(project, path, f"{name}.csv", name, users["owner"], path.stat().st_size)


def patch_split(client, mltask: dict, split: dict):
    return client.patch(
        f"/api/mltasks/{mltask['id']}/",
        {"version": mltask["version"], "split": split},
        content_type="application/json",
    )


def test_default_split_is_random_over_all_rows(project, dataset, clients):
    split = create_mltask(clients["owner"], project, dataset).json()["split"]
    assert split == {
        "mode": "random",
        "train_ratio": 0.8,
        "seed": 1337,
        "stratify": True,
        "sampling": {"method": "all"},
    }


def test_explicit_test_dataset_of_the_project_is_saved(project, dataset, clients, users, tmp_path):
    test = stored(project, users, tmp_path, "iris_test", IRIS_CSV)
    mltask = create_mltask(clients["owner"], project, dataset).json()
    response = patch_split(
        clients["owner"],
        mltask,
        {"mode": "explicit", "test_dataset": test.pk, "sampling": {"method": "head", "rows": 5}},
    )
    assert response.status_code == 200, response.json()
    split = response.json()["split"]
    assert split["mode"] == "explicit" and split["test_dataset"] == test.pk
    assert split["sampling"] == {"method": "head", "rows": 5}
    back = patch_split(clients["owner"], response.json(), {"mode": "random"}).json()["split"]
    assert back["mode"] == "random" and "test_dataset" not in back


@pytest.mark.parametrize(
    ("split", "field"),
    [
        ({"mode": "kfold"}, "split.mode"),
        ({"mode": "explicit"}, "split.test_dataset"),
        ({"mode": "explicit", "test_dataset": "iris"}, "split.test_dataset"),
        ({"mode": "explicit", "test_dataset": 999_999}, "split.test_dataset"),
        ({"train_ratio": 1.5}, "split.train_ratio"),
        ({"sampling": "head"}, "split.sampling"),
        ({"sampling": {"method": "first"}}, "split.sampling.method"),
        ({"sampling": {"method": "head"}}, "split.sampling.rows"),
        ({"sampling": {"method": "head", "rows": 1}}, "split.sampling.rows"),
        ({"sampling": {"method": "random", "rows": 10, "seed": -1}}, "split.sampling.seed"),
    ],
)
def test_bad_split_settings_name_the_field(project, dataset, clients, split, field):
    mltask = create_mltask(clients["owner"], project, dataset).json()
    response = patch_split(clients["owner"], mltask, split)
    assert response.status_code == 400
    assert field in response.json()["error"]
    assert MLTask.objects.get(pk=mltask["id"]).version == mltask["version"]


def test_test_dataset_missing_columns_is_refused_naming_them(project, dataset, clients, users, tmp_path):
    lacking = stored(project, users, tmp_path, "no_sepals", "petal,species\n1.0,setosa\n2.0,virginica\n")
    mltask = create_mltask(clients["owner"], project, dataset).json()
    response = patch_split(clients["owner"], mltask, {"mode": "explicit", "test_dataset": lacking.pk})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "'sepal_length'" in error and "'sepal_width'" in error and "no_sepals" in error
    assert "'species'" not in error  # the target is there


def test_test_dataset_must_be_another_dataset_of_the_same_project(project, dataset, clients, users, tmp_path):
    elsewhere = Project.objects.create(name="other", created_by=users["stranger"])
    foreign = stored(elsewhere, users, tmp_path, "foreign", IRIS_CSV)
    mltask = create_mltask(clients["owner"], project, dataset).json()
    response = patch_split(clients["owner"], mltask, {"mode": "explicit", "test_dataset": foreign.pk})
    assert response.status_code == 400 and "no dataset" in response.json()["error"]
    response = patch_split(clients["owner"], mltask, {"mode": "explicit", "test_dataset": dataset.pk})
    assert response.status_code == 400 and "the one being trained on" in response.json()["error"]
