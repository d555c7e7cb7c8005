"""Image datasets through the API: scikit-learn's digits as PNG files in a zip, and bad zips."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from analyses.design import DesignError, clean_features, default_features
from analyses.models import Dataset
from tests.conftest import upload
from tests.digits_images import class_folders_zip, indexed_zip, png

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "files"
    return settings.MEDIA_ROOT


def stored_files(media: Path) -> list[Path]:
    return [p for p in media.rglob("*") if p.is_file()] if media.exists() else []


def test_class_folders_become_an_index_and_a_managed_folder(clients, project, media):
    response = upload(clients["editor"], project.pk, "digits.zip", class_folders_zip(200))
    assert response.status_code == 201, response.content
    body = response.json()
    types = {c["name"]: c["type"] for c in body["columns"]}
    assert types == {"image": "image", "label": "categorical"}
    dataset = Dataset.objects.get(pk=body["id"])
    assert dataset.rows == 200
    assert dataset.images_dir == f"datasets/{dataset.pk}-images"
    table = pq.read_table(dataset.file.path).to_pandas()
    assert table.loc[0, "image"] == "digits/0/0.png" and table.loc[0, "label"] == "0"
    assert all((dataset.images_path / path).is_file() for path in table["image"])
    features = default_features(dataset, "label")
    assert features == [
        {
            "name": "image",
            "role": "input",
            "type": "image",
            "handling": {"loader": "default", "height": 32, "width": 32, "channels": 3, "scale": True},
            "input": "image",
        }
    ]


def test_csv_index_names_the_image_column(clients, project):
    response = upload(clients["editor"], project.pk, "digits.zip", indexed_zip(50))
    assert response.status_code == 201, response.content
    types = {c["name"]: c["type"] for c in response.json()["columns"]}
    assert types == {"file": "image", "digit": "categorical"}


def test_image_features_need_their_own_input(clients, project):
    upload(clients["editor"], project.pk, "digits.zip", indexed_zip(20))
    dataset = Dataset.objects.get()
    features = [
        {"name": "file", "type": "image", "input": "main", "handling": {"loader": "custom", "height": 8}},
    ]
    assert clean_features(features, dataset, "digit")[0]["handling"] == {"loader": "custom"}
    bad = [{"name": "file", "type": "image", "handling": {"scale": "false", "channels": 2}}]
    with pytest.raises(DesignError, match="1 \\(grayscale\\), 3 \\(RGB\\) or 4"):
        clean_features(bad, dataset, "digit")


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


BLACK = png(np.zeros((8, 8), dtype=np.uint8))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (zip_of({"a/1.png": BLACK, "../evil.png": BLACK}), "entry '../evil.png' points outside the archive"),
        (zip_of({"a/1.png": BLACK, "/etc/evil.png": BLACK}), "entry '/etc/evil.png' points outside"),
        (indexed_zip(5, index_rows="img/99.png,d9\n"), "row 6 of index.csv names the image 'img/99.png'"),
        (indexed_zip(5, extra={"img/fake.png": b"GIF? no, text"}), "img/fake.png is not an image"),
        (indexed_zip(5, extra={"notes.txt": b"hello"}), "notes.txt is not an image"),
        (zip_of({}), "bad.zip is empty"),
        (zip_of({"1.png": BLACK}), "image 1.png is not in a class folder"),
        (b"PK\x03\x04garbage", "bad.zip is not a valid zip file"),
    ],
)
def test_bad_zips_are_refused_and_nothing_is_stored(clients, project, media, content, message):
    response = upload(clients["editor"], project.pk, "bad.zip", content)
    assert response.status_code == 400, response.content
    assert message in response.json()["error"]
    assert not Dataset.objects.exists()
    assert stored_files(media) == []


def test_zip_bomb_is_refused(clients, project, media, settings):
    settings.MAX_UPLOAD_BYTES = 1000  # 20 000 bytes may be extracted
    content = zip_of({"a/1.png": BLACK + b"\x00" * 30_000})
    response = upload(clients["editor"], project.pk, "bomb.zip", content)
    assert response.status_code in (400, 413), response.content
    if response.status_code == 400:
        assert "bomb.zip expands to more than" in response.json()["error"]
    assert stored_files(media) == []


def test_truncated_image_is_refused_naming_it(clients, project, media):
    content = zip_of({"zero/a.png": BLACK, "one/b.png": BLACK[: len(BLACK) // 2]})  # right magic, cut short
    response = upload(clients["editor"], project.pk, "digits.zip", content)
    assert response.status_code == 400
    assert "one/b.png is not a readable image" in response.json()["error"]
    assert not Dataset.objects.exists()
    assert stored_files(media) == []
