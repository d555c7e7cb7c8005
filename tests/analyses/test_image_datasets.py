"""Image datasets through the API: scikit-learn's digits as PNG files in a zip, bad zips, and
overriding a column's type to or from ``image``."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from analyses import ingest
from analyses.design import DesignError, clean_features, default_features
from analyses.models import Dataset
from tests.conftest import upload
from tests.digits_images import class_folders_zip, digits, indexed_zip, png

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
    assert body["source"] == dataset.source == {"format": "zip", "images": 200, "layout": "class_folders"}
    assert dataset.source_summary == "ZIP of 200 images · one folder per class"
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
    index_source = {
        "format": "csv",
        "compression": None,
        "encoding": "utf-8",
        "bom": False,
        "delimiter": ",",
        "quotechar": '"',
    }
    assert response.json()["source"] == {
        "format": "zip",
        "images": 50,
        "layout": "index",
        "index": "index.csv",
        "index_source": index_source,
    }
    summary = Dataset.objects.get().source_summary
    assert summary == "ZIP of 50 images · index index.csv (CSV · UTF-8 · delimiter ',')"


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


# ---------------------------------------------------------------- type overrides to and from image


def patch_type(client, dataset_id: int, name: str, kind: str):
    body = {"columns": [{"name": name, "type": kind}]}
    return client.patch(f"/api/datasets/{dataset_id}/", body, content_type="application/json")


def column(client, dataset_id: int, name: str) -> dict:
    return next(c for c in client.get(f"/api/datasets/{dataset_id}/").json()["columns"] if c["name"] == name)


def test_an_image_column_becomes_categorical_and_back(clients, project):
    dataset = upload(clients["editor"], project.pk, "digits.zip", indexed_zip(50)).json()["id"]
    as_categorical = patch_type(clients["editor"], dataset, "file", "categorical")
    assert as_categorical.status_code == 200, as_categorical.json()
    file = column(clients["viewer"], dataset, "file")
    assert (file["type"], file["inferred_type"], file["distinct"]) == ("categorical", "image", 50)
    back = patch_type(clients["editor"], dataset, "file", "image")
    assert back.status_code == 200, back.json()
    file = column(clients["viewer"], dataset, "file")
    assert (file["type"], file["inferred_type"], file["missing"]) == ("image", "image", 0)
    assert patch_type(clients["viewer"], dataset, "file", "categorical").status_code == 403


def test_a_column_of_labels_cannot_be_an_image_naming_the_missing_files(clients, project, media):
    dataset = upload(clients["editor"], project.pk, "digits.zip", indexed_zip(50)).json()["id"]
    refused = patch_type(clients["editor"], dataset, "digit", "image")
    assert refused.status_code == 400
    assert refused.json()["error"] == (
        "Column 'digit' cannot be an image: 10 of its values name no file in the image folder of "
        "dataset 'digits', such as 'd0', 'd1', 'd2'."
    )
    assert column(clients["viewer"], dataset, "digit")["type"] == "categorical"


def index_with_extra_columns(count: int = 30) -> bytes:
    """index.csv: file, digit, size (numbers), blank (empty), and two columns that name images
    only from row 11 on (so the upload, looking at the first row group, does not take them for
    image columns): thumb (every value a file, a few missing) and crop (two names of no file)."""
    images, labels = digits(count)
    lines = ["file,digit,size,blank,thumb,crop"]
    for n, label in enumerate(labels):
        thumb = "" if n < 10 or n == 25 else (f"./img/{n}.png" if n % 2 else f"img/{n}.png")
        crop = "" if n < 10 else {20: "img/missing.png", 21: "crops/21.png"}.get(n, f"img/{n}.png")
        lines.append(f"img/{n}.png,d{label},{n * 10},,{thumb},{crop}")
    entries = {"index.csv": "\n".join(lines).encode() + b"\n"}
    entries |= {f"img/{n}.png": png(image) for n, image in enumerate(images)}
    return zip_of(entries)


@pytest.fixture
def extra_columns(clients, project, monkeypatch) -> int:
    monkeypatch.setattr(ingest, "ROW_GROUP_ROWS", 10)
    response = upload(clients["editor"], project.pk, "digits.zip", index_with_extra_columns())
    assert response.status_code == 201, response.json()
    types = {c["name"]: c["type"] for c in response.json()["columns"]}
    assert types == {
        "file": "image",
        "digit": "categorical",
        "size": "numeric",
        "blank": "numeric",
        "thumb": "categorical",
        "crop": "categorical",
    }
    return response.json()["id"]


def test_missing_values_are_allowed_in_a_column_made_an_image(clients, extra_columns):
    response = patch_type(clients["editor"], extra_columns, "thumb", "image")
    assert response.status_code == 200, response.json()
    thumb = column(clients["viewer"], extra_columns, "thumb")
    assert (thumb["type"], thumb["inferred_type"], thumb["missing"]) == ("image", "categorical", 11)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "crop",
            "Column 'crop' cannot be an image: 2 of its values name no file in the image folder of "
            "dataset 'digits', such as 'img/missing.png', 'crops/21.png'.",
        ),
        (
            "size",
            "Column 'size' cannot be an image: it holds numbers or true/false values, not the images' "
            "file names (such as img/0.png).",
        ),
        ("blank", "Column 'blank' cannot be an image: every value is missing."),
    ],
)
def test_columns_that_do_not_name_images_are_refused(clients, extra_columns, name, message):
    before = column(clients["viewer"], extra_columns, name)
    refused = patch_type(clients["editor"], extra_columns, name, "image")
    assert refused.status_code == 400
    assert refused.json()["error"] == message
    assert column(clients["viewer"], extra_columns, name) == before


def test_one_missing_file_is_named_alone(clients, project):
    content = zip_of(
        {
            # "other" names a file in 1 row of 4: too few for the upload to take it for images
            "index.csv": b"file,other\nimg/0.png,img/gone.png\nimg/1.png,img/gone.png\n"
            b"img/0.png,img/1.png\nimg/1.png,img/gone.png\n",
            "img/0.png": BLACK,
            "img/1.png": BLACK,
        }
    )
    response = upload(clients["editor"], project.pk, "pair.zip", content)
    assert response.status_code == 201, response.json()
    assert {c["name"]: c["type"] for c in response.json()["columns"]}["other"] == "categorical"
    refused = patch_type(clients["editor"], response.json()["id"], "other", "image")
    assert refused.json()["error"] == (
        "Column 'other' cannot be an image: 1 of its values names no file in the image folder of "
        "dataset 'pair', such as 'img/gone.png'."
    )


def test_an_image_folder_gone_from_storage_is_said_so(clients, project):
    dataset_id = upload(clients["editor"], project.pk, "digits.zip", indexed_zip(10)).json()["id"]
    patch_type(clients["editor"], dataset_id, "file", "categorical")
    dataset = Dataset.objects.get(pk=dataset_id)
    shutil.rmtree(dataset.images_path)
    refused = patch_type(clients["editor"], dataset_id, "file", "image")
    assert refused.status_code == 400
    assert refused.json()["error"] == (
        f"The images of dataset 'digits' are missing from storage ({dataset.images_path})."
    )
