"""Uploading datasets through the API: sniffing, Parquet storage, statistics, type overrides, bad input.

Real data nobody here wrote: scikit-learn's bundled datasets, and the Titanic passenger list that
scikit-learn ships (as OpenML's ARFF file, for its own fetch_openml tests) with its real missing
values and categorical columns. Expected figures are computed independently with pandas.
"""

from __future__ import annotations

import csv
import gzip
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sklearn
from sklearn import datasets

from analyses import ingest
from analyses.models import Dataset
from analyses.sources import summary
from tests.conftest import upload
from tests.real_data import titanic

pytestmark = pytest.mark.django_db

OPENML = Path(sklearn.__file__).parent / "datasets" / "tests" / "data" / "openml"


def iris() -> pd.DataFrame:
    bunch = datasets.load_iris(as_frame=True)
    frame = bunch.frame.rename(columns={"target": "species"})
    frame["species"] = frame["species"].map(dict(enumerate(bunch.target_names)))
    return frame


@pytest.fixture
def storage(settings, tmp_path):
    """Storage and upload scratch in tmp_path, to check that a refused upload leaves no file."""
    settings.MEDIA_ROOT = tmp_path / "files"
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "scratch")
    (tmp_path / "scratch").mkdir()
    return tmp_path


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def columns_by_name(body: dict) -> dict[str, dict]:
    return {column["name"]: column for column in body["columns"]}


def check_titanic(body: dict, expected: pd.DataFrame) -> None:
    assert body["rows"] == len(expected) == 1309
    columns = columns_by_name(body)
    assert list(columns) == list(expected.columns)
    for name in expected.columns:
        assert columns[name]["missing"] == int(expected[name].isna().sum()), name
        assert columns[name]["distinct"] == expected[name].nunique(), name
    assert {name: columns[name]["type"] for name in ("age", "fare", "sex", "embarked", "pclass")} == {
        "age": "numeric",
        "fare": "numeric",
        "sex": "categorical",
        "embarked": "categorical",
        "pclass": "numeric",
    }
    age = columns["age"]
    assert age["mean"] == pytest.approx(expected["age"].mean())
    assert age["std"] == pytest.approx(expected["age"].std())
    assert (age["min"], age["max"]) == (expected["age"].min(), expected["age"].max())
    assert sum(age["histogram"]["counts"]) == expected["age"].notna().sum()
    assert len(age["histogram"]["edges"]) == len(age["histogram"]["counts"]) + 1 == 21
    top = expected["embarked"].value_counts()
    assert columns["embarked"]["top"][0] == {"value": top.index[0], "count": int(top.iloc[0])}


def test_semicolon_csv_with_quoted_delimiters_and_newlines(project, clients, storage):
    frame = titanic()
    # Real values holding the delimiter and line breaks: home.dest's " / " separators become newlines.
    frame["home.dest"] = frame["home.dest"].str.replace(" / ", ";\n")
    content = frame.to_csv(index=False, sep=";").encode()
    response = upload(clients["editor"], project.pk, "titanic.csv", content)
    assert response.status_code == 201, response.json()
    check_titanic(response.json(), frame)
    page = clients["viewer"].get(f"/api/datasets/{response.json()['id']}/rows/?offset=1&limit=1").json()
    assert page["rows"][0][page["columns"].index("home.dest")] == frame["home.dest"][1]
    assert "\n" in frame["home.dest"][1]


def test_utf8_with_bom_and_gzip_by_magic_bytes(project, clients, storage):
    frame = titanic()
    content = gzip.compress(frame.to_csv(index=False).encode("utf-8-sig"))
    response = upload(clients["editor"], project.pk, "titanic.data", content)  # no .gz: sniffed
    assert response.status_code == 201, response.json()
    body = response.json()
    check_titanic(body, frame)
    assert body["columns"][0]["name"] == "pclass"  # the BOM is not part of the first name
    assert body["filename"] == "titanic.data"


def test_latin1_with_accented_values(project, clients, storage):
    frame = titanic()
    frame["home.dest"] = (
        frame["home.dest"].str.replace("Montreal", "Montréal").str.replace("Quebec", "Québec")
    )
    content = frame.to_csv(index=False, sep="\t").encode("latin-1")
    response = upload(clients["editor"], project.pk, "titanic.tsv", content)
    assert response.status_code == 201, response.json()
    check_titanic(response.json(), frame)
    dataset = Dataset.objects.get(pk=response.json()["id"])
    stored = pq.read_table(dataset.file.path).column("home.dest").to_pylist()
    assert stored == [None if pd.isna(v) else v for v in frame["home.dest"]]
    assert any("Montréal" in v for v in stored if v)


def test_parquet_upload_keeps_types_and_statistics(project, clients, storage):
    frame = datasets.load_wine(as_frame=True).frame
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    response = upload(clients["editor"], project.pk, "wine.parquet", buffer.getvalue())
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["rows"] == 178 and body["filename"] == "wine.parquet"
    columns = columns_by_name(body)
    assert all(c["type"] == "numeric" and c["missing"] == 0 for c in columns.values())
    assert columns["alcohol"]["mean"] == pytest.approx(frame["alcohol"].mean())
    assert columns["alcohol"]["std"] == pytest.approx(frame["alcohol"].std())
    counts, _ = np.histogram(frame["proline"], bins=20)
    assert columns["proline"]["histogram"]["counts"] == counts.tolist()
    assert columns["target"]["distinct"] == 3


def test_dates_are_inferred_and_have_a_range(project, clients, storage):
    frame = iris()
    frame["measured"] = pd.date_range("2024-01-01", periods=len(frame), freq="D").strftime("%Y-%m-%d")
    response = upload(clients["editor"], project.pk, "iris.csv", frame.to_csv(index=False).encode())
    columns = columns_by_name(response.json())
    assert columns["measured"]["type"] == "date"
    assert (columns["measured"]["min"], columns["measured"]["max"]) == ("2024-01-01", "2024-05-29")
    assert columns["species"]["type"] == "categorical"
    assert columns["species"]["top"] == [
        {"value": name, "count": 50} for name in ("setosa", "versicolor", "virginica")
    ]


def test_mltask_on_a_parquet_dataset_reads_labels_as_the_runner_does(project, clients, storage):
    frame = titanic()
    response = upload(clients["editor"], project.pk, "titanic.csv", frame.to_csv(index=False).encode())
    dataset = response.json()["id"]
    analysis = clients["editor"].post(
        f"/api/projects/{project.pk}/analyses/", {"dataset": dataset}, content_type="application/json"
    )
    mltask = clients["editor"].post(
        f"/api/analyses/{analysis.json()['id']}/mltasks/",
        {"target": "survived"},
        content_type="application/json",
    )
    assert mltask.status_code == 201, mltask.json()
    assert mltask.json()["prediction_type"] == "binary" and mltask.json()["classes"] == ["0", "1"]
    pclass = clients["editor"].post(
        f"/api/analyses/{analysis.json()['id']}/mltasks/",
        {"target": "pclass", "prediction_type": "multiclass"},
        content_type="application/json",
    )
    assert pclass.json()["classes"] == ["1.0", "2.0", "3.0"]  # written as 1.0 in the CSV: kept as such


def test_preview_pages_deep_into_a_file_of_many_row_groups(project, clients, storage, monkeypatch):
    monkeypatch.setattr(ingest, "ROW_GROUP_ROWS", 100)
    monkeypatch.setattr(ingest, "BLOCK_BYTES", 4096)
    frame = datasets.load_digits(as_frame=True).frame  # 1797 rows, 65 columns
    response = upload(clients["editor"], project.pk, "digits.csv", frame.to_csv(index=False).encode())
    dataset = Dataset.objects.get(pk=response.json()["id"])
    assert pq.ParquetFile(dataset.file.path).metadata.num_row_groups > 10
    page = clients["viewer"].get(f"/api/datasets/{dataset.pk}/rows/?offset=1650&limit=120").json()
    assert page["total"] == 1797 and page["columns"] == list(frame.columns)
    assert page["rows"] == frame.iloc[1650:1770].astype(int).astype(str).to_numpy().tolist()
    tail = clients["viewer"].get(f"/api/datasets/{dataset.pk}/rows/?offset=1750&limit=100").json()
    assert tail["rows"] == frame.iloc[1750:].astype(int).astype(str).to_numpy().tolist()
    assert clients["viewer"].get(f"/api/datasets/{dataset.pk}/rows/?offset=5000").json()["rows"] == []


def test_type_override_accepted_then_undone_and_impossible_ones_refused(project, clients, storage):
    response = upload(clients["editor"], project.pk, "titanic.csv", titanic().to_csv(index=False).encode())
    url = f"/api/datasets/{response.json()['id']}/"

    def patch(client, **columns):
        body = {"columns": [{"name": name, "type": kind} for name, kind in columns.items()]}
        return clients[client].patch(url, body, content_type="application/json")

    as_categorical = patch("editor", pclass="categorical")
    assert as_categorical.status_code == 200, as_categorical.json()
    pclass = columns_by_name(as_categorical.json())["pclass"]
    assert pclass["type"] == "categorical" and pclass["inferred_type"] == "numeric"
    assert [t["value"] for t in pclass["top"]] == [3.0, 1.0, 2.0]
    undone = columns_by_name(patch("editor", pclass="numeric").json())["pclass"]
    assert undone["type"] == "numeric" and "histogram" in undone

    refused = patch("editor", name="numeric")
    assert refused.status_code == 400
    assert "Column 'name' cannot be numeric" in refused.json()["error"]
    assert (
        "Allen, Miss. Elisabeth Walton" in refused.json()["error"] or "such as '" in refused.json()["error"]
    )
    not_a_date = patch("editor", sex="date")
    assert not_a_date.status_code == 400 and "'sex' cannot be a date" in not_a_date.json()["error"]
    unknown = patch("editor", colour="text")
    assert unknown.status_code == 400 and "'colour' is not a column" in unknown.json()["error"]
    assert patch("viewer", sex="text").status_code == 403
    assert columns_by_name(clients["viewer"].get(url).json())["sex"]["type"] == "categorical"


RAGGED = b"a,b,c\n1,2,3\n4,5,6\n7,8\n9,10,11\n"
DIGITS_GZ = gzip.compress(datasets.load_digits(as_frame=True).frame.to_csv(index=False).encode())


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("ragged.csv", RAGGED, "line 4 has 2 field(s) but the header has 3"),
        ("ragged.csv.gz", gzip.compress(RAGGED), "line 4 has 2 field(s) but the header has 3"),
        ("junk.csv", bytes(range(256)) * 64, "not a CSV file"),
        ("empty.csv", b"", "is empty"),
        ("blank.csv", b"\n\n  \n", "is empty"),
        ("header.csv", b"a;b;c\n", "no rows"),
        ("dupes.csv", b"a,b,a\n1,2,3\n", "repeats column name(s) a"),
        ("noname.csv", b"a,,c\n1,2,3\n", "column 2 of the header row has no name"),
        ("cut.csv.gz", DIGITS_GZ[: len(DIGITS_GZ) * 2 // 3], "corrupt gzip"),
        ("fake.csv.gz", b"a,b\n1,2\n", "not a gzip file"),
        ("fake.parquet", b"a,b\n1,2\n", "not a Parquet file"),
        ("cut.parquet", b"PAR1" + b"\x00" * 100, "not a valid Parquet file"),
    ],
)
def test_bad_input_is_named_and_nothing_is_stored(project, clients, storage, filename, content, message):
    response = upload(clients["editor"], project.pk, filename, content)
    assert response.status_code == 400, response.json()
    assert message in response.json()["error"]
    assert filename in response.json()["error"] or message == "no rows"
    assert Dataset.objects.count() == 0
    assert stored_files(storage) == []


def test_a_late_value_that_does_not_fit_widens_the_column(project, clients, storage, monkeypatch):
    monkeypatch.setattr(ingest, "SAMPLE_ROWS", 10)
    monkeypatch.setattr(ingest, "BLOCK_BYTES", 64)
    lines = ["n,x"] + [f"{i},{i}" for i in range(50)] + ["50,1.5", "51,oops"]
    response = upload(clients["editor"], project.pk, "late.csv", "\n".join(lines).encode())
    assert response.status_code == 201, response.json()
    columns = columns_by_name(response.json())
    assert columns["n"]["type"] == "numeric" and columns["x"]["type"] == "categorical"
    dataset = Dataset.objects.get(pk=response.json()["id"])
    schema = pq.read_schema(dataset.file.path)
    assert schema.field("n").type == pa.int64() and schema.field("x").type == pa.string()


def iris_csv(**options) -> bytes:
    return iris().to_csv(index=False, **options).encode()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def latin1_titanic() -> bytes:
    frame = titanic()
    frame["home.dest"] = frame["home.dest"].str.replace("Montreal", "Montréal")
    return frame.to_csv(index=False).encode("latin-1")


CSV = {"format": "csv", "compression": None, "encoding": "utf-8", "bom": False, "quotechar": '"'}


@pytest.mark.parametrize(
    ("filename", "content", "source", "line"),
    [
        ("iris.tsv", iris_csv(sep="\t"), CSV | {"delimiter": "\t"}, "CSV · UTF-8 · delimiter tab"),
        (
            "iris.csv.gz",
            gzip.compress(iris_csv(sep=";").decode().encode("utf-8-sig")),
            CSV | {"compression": "gzip", "bom": True, "delimiter": ";"},
            "CSV · UTF-8 (BOM) · delimiter ';' · gzip",
        ),
        (
            "titanic.csv",
            latin1_titanic(),
            CSV | {"encoding": "cp1252", "delimiter": ","},
            "CSV · Latin-1 (Windows-1252) · delimiter ','",
        ),
        (
            "iris.txt",
            iris_csv(sep="|", quotechar="'", quoting=csv.QUOTE_NONNUMERIC),
            CSV | {"delimiter": "|", "quotechar": "'"},
            "CSV · UTF-8 · delimiter '|' · quote \"'\"",
        ),
        ("iris.parquet", parquet_bytes(iris()), {"format": "parquet"}, "Parquet"),
    ],
)
def test_how_the_upload_was_read_is_kept_served_and_shown(
    project, clients, users, storage, filename, content, source, line
):
    response = upload(clients["editor"], project.pk, filename, content)
    assert response.status_code == 201, response.json()
    assert response.json()["source"] == source
    dataset = Dataset.objects.get(pk=response.json()["id"])
    assert dataset.source == source and dataset.source_summary == line
    assert clients["viewer"].get(f"/api/datasets/{dataset.pk}/").json()["source"] == source
    clients["viewer"].force_login(users["viewer"])
    page = clients["viewer"].get(f"/projects/{project.pk}/datasets/{dataset.pk}/")
    assert f'id="dataset-source" title="How the upload was read">Read as {line}</p>' in html.unescape(
        page.content.decode()
    )


def test_a_dataset_stored_before_sources_were_kept_shows_no_source_line(project, dataset, clients, users):
    Dataset.objects.filter(pk=dataset.pk).update(source={})  # as migration 0004 left older rows
    assert clients["viewer"].get(f"/api/datasets/{dataset.pk}/").json()["source"] == {}
    clients["viewer"].force_login(users["viewer"])
    page = clients["viewer"].get(f"/projects/{project.pk}/datasets/{dataset.pk}/")
    assert page.status_code == 200 and 'id="dataset-source"' not in page.content.decode()
    assert summary({}) == summary(None) == ""


def test_image_override_in_a_dataset_without_image_folder_is_refused(project, clients, storage):
    response = upload(clients["editor"], project.pk, "titanic.csv", titanic().to_csv(index=False).encode())
    url = f"/api/datasets/{response.json()['id']}/"
    refused = clients["editor"].patch(
        url, {"columns": [{"name": "name", "type": "image"}]}, content_type="application/json"
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == (
        "Column 'name' cannot be an image: dataset 'titanic' has no image folder. "
        "Upload the images as a zip (with a CSV index, or one folder per class) to get one."
    )
    assert columns_by_name(clients["viewer"].get(url).json())["name"]["type"] == "categorical"
