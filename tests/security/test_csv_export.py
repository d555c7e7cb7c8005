"""CSV downloads are safe to open in a spreadsheet (OWASP "CSV injection"): text cells and column
names starting with = + - @, a tab or a carriage return get a leading apostrophe; numbers stay
numbers. `GET /api/datasets/{id}/download/` is the one CSV download (a scored dataset, with its
`prediction` column of class labels, is a dataset like any other)."""

from __future__ import annotations

import csv
import io

import pyarrow as pa
import pytest
from django.core.files.base import ContentFile

from analyses.dataset_csv import defuse
from analyses.models import Dataset
from tests.conftest import upload

pytestmark = pytest.mark.django_db

HOSTILE = [
    ('=HYPERLINK("http://evil.example","x")', '\'=HYPERLINK("http://evil.example","x")'),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
    ("\t=1", "'\t=1"),
    ("\r=1", "'\r=1"),
    ("-", "'-"),
    ("-5", "-5"),  # a number written as text stays a number
    ("+1.5e3", "+1.5e3"),
    ("plain", "plain"),
    ("a=b", "a=b"),
]


def download(client, dataset_id: int) -> list[list[str]]:
    response = client.get(f"/api/datasets/{dataset_id}/download/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


def test_formulas_in_values_and_names_are_defused_and_numbers_kept(project, clients, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "files"
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # \r\n line ends: a value holding \r is quoted
    writer.writerow(["=name", "label", "amount", "ratio"])
    for index, (value, _) in enumerate(HOSTILE):
        writer.writerow([f"row{index}", value, -index - 1, f"{-0.5 * index}"])
    response = upload(clients["editor"], project.pk, "hostile.csv", buffer.getvalue().encode())
    assert response.status_code == 201, response.json()
    types = {c["name"]: c["type"] for c in response.json()["columns"]}
    assert types["amount"] == types["ratio"] == "numeric"

    rows = download(clients["viewer"], response.json()["id"])
    assert rows[0] == ["'=name", "label", "amount", "ratio"]
    assert [row[1] for row in rows[1:]] == [expected for _, expected in HOSTILE]
    assert [row[2] for row in rows[1:]] == [str(-index - 1) for index in range(len(HOSTILE))]  # -1, not '-1
    assert all(not row[3].startswith("'") and float(row[3]) <= 0 for row in rows[1:])


def test_a_dataset_stored_as_csv_before_parquet_is_defused_too(project, users, clients, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "files"
    dataset = Dataset(project=project, name="legacy", created_by=users["owner"], rows=2, columns=[])
    dataset.file.save("legacy.csv", ContentFile(b"a,=b\n=1+1,-3\n@x,4\n"), save=True)
    assert download(clients["viewer"], dataset.pk) == [["a", "'=b"], ["'=1+1", "-3"], ["'@x", "4"]]


def test_defuse_keeps_types_nulls_and_dictionary_columns() -> None:
    table = pa.table(
        {
            "text": pa.array(["=1", None, "ok"]),
            "labels": pa.array(["@a", "b", "@a"]).dictionary_encode(),
            "big": pa.array(["-x", "y", None], pa.large_string()),
            "n": pa.array([-1.5, None, 2.0]),
            "flag": pa.array([True, False, None]),
        }
    )
    result = defuse(table)
    assert result.column("text").to_pylist() == ["'=1", None, "ok"]
    assert result.column("labels").to_pylist() == ["'@a", "b", "'@a"]
    assert result.column("big").to_pylist() == ["'-x", "y", None]
    assert result.column("n").type == pa.float64() and result.column("n").to_pylist() == [-1.5, None, 2.0]
    assert result.column("flag").to_pylist() == [True, False, None]
