"""Ingestion details behind the upload benchmark: the quote sniffer, statistics computed while the
Parquet file is written (checked against pandas and against a second read of the file), small
parse blocks with row groups of a fixed size, and errors raised on the parsing thread.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analyses import ingest, statistics
from analyses.ingest import DatasetError
from analyses.models import Dataset
from tests.conftest import upload
from tests.real_data import titanic

pytestmark = pytest.mark.django_db


@pytest.fixture
def storage(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "files"
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "scratch")
    (tmp_path / "scratch").mkdir()
    return tmp_path


def test_apostrophes_in_a_tab_separated_file_are_not_quotes(project, clients, storage):
    frame = titanic()
    assert not frame["name"].str.contains('"').any()  # this copy quotes nicknames with apostrophes
    frame.loc[0, "name"] = "'t Hooft, Mr. Gerard"  # a value opening with an apostrophe
    frame.loc[1, "name"] = "O'Brien, Mr. Thomas"
    content = frame.to_csv(index=False, sep="\t").encode()
    response = upload(clients["editor"], project.pk, "titanic.tsv", content)
    assert response.status_code == 201, response.json()
    assert response.json()["rows"] == 1309
    assert response.json()["source"]["quotechar"] == '"'
    stored = pq.read_table(Dataset.objects.get(pk=response.json()["id"]).file.path).column("name").to_pylist()
    assert stored[:2] == ["'t Hooft, Mr. Gerard", "O'Brien, Mr. Thomas"]
    assert stored == frame["name"].tolist()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a|b\n'x'|'y'\n1|'z'\n", "'"),  # whole fields in single quotes
        ("a|b\n'x''s'|1\n", "'"),  # a doubled quote inside a quoted field
        ('a,b\n\'x\',\'y\'\n"p, q","r"\n"s",1\n', '"'),  # more fields in double quotes
        ("name\tnote\n't Hooft\tit's\nO'Brien\t'quoted'\n", "'"),  # one real single-quoted field
        ("name\tnote\n't Hooft\tit's\nO'Brien\tJones'\n", '"'),  # apostrophes only
    ],
)
def test_the_quote_character_is_the_one_that_quotes_whole_fields(text, expected):
    delimiter = "|" if "|" in text else ("\t" if "\t" in text else ",")
    assert ingest._quotechar(text, delimiter) == expected


def mixed_frame(rows: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "measure": rng.normal(0, 1, rows).round(3),  # many distinct values, and 0.0 next to -0.0
            "count": rng.integers(0, 40, rows),
            "city": rng.choice(["Paris", "Lyon", "Nice", "Brest"], rows),
            "customer": [f"C{v}" for v in rng.integers(0, rows, rows)],
        }
    )
    frame.loc[rng.random(rows) < 0.05, "measure"] = np.nan
    frame.loc[rng.random(rows) < 0.03, "city"] = None
    return frame


def test_statistics_streamed_while_writing_match_pandas_and_a_reread(storage, monkeypatch, tmp_path):
    # Small blocks, row groups and cap, so that every path runs: batches gathered into row groups,
    # distinct counts turning to estimates midway, top values counted past the cap.
    monkeypatch.setattr(ingest, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(ingest, "ROW_GROUP_ROWS", 1000)
    monkeypatch.setattr(statistics, "DISTINCT_CAP", 500)
    monkeypatch.setattr(statistics, "KMV_SIZE", 128)
    frame = mixed_frame(6000)
    path = tmp_path / "mixed.csv"
    frame.to_csv(path, index=False)
    target = tmp_path / "mixed.parquet"
    converted = ingest.convert(path, "mixed.csv", target)

    metadata = pq.ParquetFile(target).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [1000] * 6
    columns = {c["name"]: c for c in converted.columns}
    assert_same_statistics(converted.columns, statistics.describe_columns(target))  # as a second read finds
    for name in frame.columns:
        assert columns[name]["missing"] == int(frame[name].isna().sum()), name
    measure, count = columns["measure"], columns["count"]
    assert measure["mean"] == pytest.approx(frame["measure"].mean(), rel=1e-12)
    assert measure["std"] == pytest.approx(frame["measure"].std(), rel=1e-12)
    assert (measure["min"], measure["max"]) == (frame["measure"].min(), frame["measure"].max())
    assert measure["distinct_approx"]
    assert measure["distinct"] == pytest.approx(frame["measure"].nunique(), rel=0.3)  # 128 hashes: rough
    expected_counts, _ = np.histogram(frame["measure"].dropna(), bins=20)
    assert measure["histogram"]["counts"] == expected_counts.tolist()
    assert (count["distinct"], count["distinct_approx"]) == (frame["count"].nunique(), False)
    city = frame["city"].value_counts()
    assert columns["city"]["top"] == [{"value": v, "count": int(c)} for v, c in city.items()]
    assert not columns["city"]["top_approx"]
    assert columns["customer"]["distinct_approx"] and columns["customer"]["top_approx"]


def assert_same_statistics(streamed: list[dict], reread: list[dict]) -> None:
    """Equal, but for the last bits of mean and std (summed in other batches) and approximate top values."""
    assert [c["name"] for c in streamed] == [c["name"] for c in reread]
    for mine, theirs in zip(streamed, reread, strict=True):
        rounded = {"mean", "std"} | ({"top"} if mine.get("top_approx") else set())
        assert {k: v for k, v in mine.items() if k not in rounded} == {
            k: v for k, v in theirs.items() if k not in rounded
        }, mine["name"]
        for key in {"mean", "std"} & theirs.keys():
            assert mine[key] == pytest.approx(theirs[key], rel=1e-12), (mine["name"], key)


def test_negative_and_positive_zero_are_one_distinct_value(tmp_path):
    path = tmp_path / "zeros.csv"
    path.write_text("x\n0.0\n-0.0\n1.5\n-0.0\n")
    converted = ingest.convert(path, "zeros.csv", tmp_path / "zeros.parquet")
    assert converted.columns[0]["distinct"] == pd.Series([0.0, -0.0, 1.5, -0.0]).nunique() == 2


def test_a_row_longer_than_a_block_is_read_with_larger_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "BLOCK_BYTES", 1024)
    monkeypatch.setattr(ingest, "MAX_BLOCK_BYTES", 64 * 1024)
    note = "word " * 2000  # 10 kB in one field
    path = tmp_path / "long.csv"
    path.write_text(f"id,note\n1,short\n2,{note}\n3,short\n")
    converted = ingest.convert(path, "long.csv", tmp_path / "long.parquet")
    assert converted.rows == 3
    assert pq.read_table(tmp_path / "long.parquet").column("note").to_pylist()[1] == note

    monkeypatch.setattr(ingest, "MAX_BLOCK_BYTES", 2048)  # past the largest block: Arrow's reason, named
    with pytest.raises(DatasetError, match="long.csv could not be read as CSV: straddling"):
        ingest.convert(path, "long.csv", tmp_path / "long.parquet")


def test_an_error_deep_in_the_file_comes_from_the_parsing_thread_with_its_line(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "BLOCK_BYTES", 256)
    lines = ["a,b,c"] + [f"{i},{i},x" for i in range(500)]
    lines[400] = "399,oops"
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="ragged.csv: line 401 has 2 field"):
        ingest.convert(path, "ragged.csv", tmp_path / "ragged.parquet")


def test_columns_of_distinct_values_skip_parquet_dictionary_encoding(tmp_path):
    frame = mixed_frame(3000)
    path = tmp_path / "mixed.csv"
    frame.to_csv(path, index=False)
    ingest.convert(path, "mixed.csv", tmp_path / "mixed.parquet")
    group = pq.ParquetFile(tmp_path / "mixed.parquet").metadata.row_group(0)
    encodings = {group.column(i).path_in_schema: group.column(i).encodings for i in range(group.num_columns)}
    assert "RLE_DICTIONARY" in encodings["city"] and "RLE_DICTIONARY" in encodings["count"]
    assert "RLE_DICTIONARY" not in encodings["measure"] and "RLE_DICTIONARY" not in encodings["customer"]


def test_statistics_stream_a_file_without_holding_what_was_read(tmp_path, monkeypatch):
    # Arrow's default pre-buffering keeps the column chunks read so far until the iteration ends
    # (here: one column read of two, in row groups smaller than its read ranges).
    path = tmp_path / "floats.parquet"
    values = np.random.default_rng(5).random(1_000_000)  # 8 MB that compression cannot shrink
    pq.write_table(pa.table({"x": values, "y": values[::-1]}), path, row_group_size=25_000)
    allocated: list[int] = []
    update = statistics.StreamedStatistics.update

    def recording(self, table):
        update(self, table)
        allocated.append(pa.total_allocated_bytes())

    monkeypatch.setattr(statistics.StreamedStatistics, "update", recording)
    monkeypatch.setattr(statistics, "BATCH_ROWS", 25_000)
    result = statistics.column_statistics(path, {"x": "numeric"})
    assert result["x"]["missing"] == 0 and result["x"]["max"] == values.max()
    assert len(allocated) == 40
    assert allocated[-1] - allocated[0] < 2 * 2**20
