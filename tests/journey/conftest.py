from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.live import Client, breast_cancer_csv, distributed_studio, embedded_studio


@pytest.fixture(scope="module", params=["embedded", "distributed"])
def studio(request, tmp_path_factory):
    data_dir: Path = tmp_path_factory.mktemp(f"{request.param}-data")
    if request.param == "embedded":
        with embedded_studio(data_dir) as running:
            yield running
        return
    redis_url, database_url = os.environ.get("REDIS_URL"), os.environ.get("DATABASE_URL")
    if not (redis_url and database_url):
        pytest.skip("distributed mode needs REDIS_URL and DATABASE_URL (.ci/run sets both)")
    with distributed_studio(data_dir, redis_url, database_url) as running:
        yield running


@pytest.fixture(scope="module")
def client(studio) -> Client:
    return Client(studio.base)


@pytest.fixture(scope="module")
def cancer_task(client) -> dict:
    """The breast-cancer CSV uploaded to a fresh project, with a default ML task on `target`."""
    project = client.call("POST", "/api/projects/", json={"name": "journey"})["id"]
    dataset = client.upload(project, "breast_cancer.csv", breast_cancer_csv(), name="breast cancer")
    mltask = client.mltask(project, dataset["id"], "target")
    return {"project": project, "dataset": dataset, "mltask": mltask}
