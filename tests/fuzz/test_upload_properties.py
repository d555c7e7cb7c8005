"""Property-based tests of dataset uploads (CSV, gzip, Parquet, zips of images) through the API.

Whatever is uploaded, the answer is 201 or a clear 4xx (a JSON ``error`` naming the problem),
never a 5xx; a refused upload leaves no Dataset row, no stored file, no image folder and no
scratch file behind; an accepted one can be previewed and downloaded. Generated inputs: random
bytes (behind the magic bytes of each format), CSV tables with random names and values written
with random delimiters, quoting, line ends, encodings and gzip, sometimes cut short, and zips with
random entries (images, non-images, an index naming present and missing files, zip-slip names,
zip bombs, corrupted or truncated archives).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from analyses.models import Dataset
from tests.conftest import upload
from tests.fuzz.conftest import examples

pytestmark = pytest.mark.django_db

MAX_UPLOAD = 256 * 1024  # a small cap: a zip may expand to 20 times that (analyses.datasets)


@pytest.fixture
def storage(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "files"
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "scratch")
    settings.MAX_UPLOAD_BYTES = MAX_UPLOAD
    (tmp_path / "scratch").mkdir()
    return tmp_path


def files_under(root: Path) -> set[str]:
    """Files and links (empty folders such as the datasets root do not count)."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir() or p.is_symlink()}


def check_upload(client, project, storage: Path, filename: str, content: bytes) -> dict | None:
    """Upload; assert the outcome is 201 or a clear 4xx that left nothing behind. The body on 201."""
    before_rows = Dataset.objects.count()
    before_files = files_under(storage)
    response = client.post(
        f"/api/projects/{project.pk}/datasets/",
        {"file": _named(content, filename), "name": ""},
    )
    assert response.status_code in (201, 400, 413), (response.status_code, response.content[:500])
    body = json.loads(response.content)
    if response.status_code != 201:
        assert isinstance(body.get("error"), str) and len(body["error"]) > 10, body
        assert Dataset.objects.count() == before_rows
        assert files_under(storage) == before_files, "a refused upload left files behind"
        return None
    assert Dataset.objects.count() == before_rows + 1
    assert files_under(storage / "scratch") == set(), "scratch files left behind"
    dataset = Dataset.objects.get(pk=body["id"])
    assert Path(dataset.file.path).is_file()
    rows = client.get(f"/api/datasets/{dataset.pk}/rows/?limit=5")
    assert rows.status_code == 200, rows.content[:500]
    download = client.get(f"/api/datasets/{dataset.pk}/download/")
    assert download.status_code == 200
    text = b"".join(download.streaming_content).decode("utf-8")
    header = next(csv.reader(io.StringIO(text)))
    assert len(header) == len(body["columns"])
    _forget(dataset)
    return body


def _named(content: bytes, filename: str) -> io.BytesIO:
    handle = io.BytesIO(content)
    handle.name = filename
    return handle


def _forget(dataset: Dataset) -> None:
    """Remove an accepted dataset, so every example starts from the same storage."""
    images = dataset.images_path
    dataset.file.delete(save=False)
    dataset.delete()
    if images is not None:
        shutil.rmtree(images)


# ---------------------------------------------------------------- random bytes

MAGIC = [b"", b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"PAR1", b"\xef\xbb\xbf", b"a,b\n"]
FILENAMES = ["data.csv", "data.tsv", "data.txt", "data.csv.gz", "data.parquet", "data.zip", "data", ".csv"]


@settings(max_examples=examples(40))
@given(magic=st.sampled_from(MAGIC), tail=st.binary(max_size=2048), filename=st.sampled_from(FILENAMES))
def test_random_bytes_are_refused_clearly_or_accepted(clients, project, storage, magic, tail, filename):
    check_upload(clients["editor"], project, storage, filename, magic + tail)


# ---------------------------------------------------------------- CSV text

SIMPLE = st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=8)
TRICKY = st.text(
    st.one_of(
        st.sampled_from(list(",;\t|\"'\r\n \\=+-@#")),
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
    ),
    max_size=12,
)
CELL = st.one_of(
    TRICKY,
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "NA", "null", "true", "False", "2024-01-31", "1e400", "-", "=1+2"]),
    st.sampled_from(["inf", "-inf", "nan", "1e308", "-1e308", "1e17", "100000000000000016"]),
)


@st.composite
def csv_uploads(draw) -> tuple[str, bytes, dict]:
    simple = draw(st.booleans())
    width = draw(st.integers(1, 5))
    names = draw(st.lists(SIMPLE if simple else TRICKY, min_size=width, max_size=width))
    if simple:
        names = list(dict.fromkeys(names))  # distinct
    rows = draw(
        st.lists(
            st.lists(SIMPLE if simple else CELL, min_size=len(names), max_size=len(names)),
            max_size=15,
        )
    )
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, quoting=quoting, lineterminator=newline)
    writer.writerow(names)
    writer.writerows(rows)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16"]))
    content = buffer.getvalue().encode(encoding, errors="replace")
    gzipped = draw(st.booleans())
    cut = draw(st.one_of(st.none(), st.integers(0, max(len(content) - 1, 0))))
    if cut is not None and not simple:
        content = content[:cut]
    if gzipped:
        content = gzip.compress(content, mtime=0)
    filename = draw(st.sampled_from(["data.csv", "data.tsv", "data.txt"])) + (".gz" if gzipped else "")
    well_formed = simple and rows and encoding in ("utf-8", "utf-8-sig", "latin-1", "cp1252")
    return filename, content, {"well_formed": well_formed, "names": names, "rows": len(rows)}


@settings(max_examples=examples(100))
@given(csv_upload=csv_uploads())
def test_csv_uploads_are_read_or_refused_clearly(clients, project, storage, csv_upload):
    filename, content, expected = csv_upload
    body = check_upload(clients["editor"], project, storage, filename, content)
    if expected["well_formed"]:  # plain names and values: read exactly
        assert body is not None, f"a well-formed CSV was refused: {content[:300]!r}"
        assert [c["name"] for c in body["columns"]] == expected["names"]
        assert body["rows"] == expected["rows"]


# ---------------------------------------------------------------- zips


def _png(size: int = 4, colour: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (colour, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()


def _pixel_bomb() -> bytes:
    """A valid PNG header declaring 100,000 × 100,000 pixels (10 G), in a hundred bytes."""
    png = bytearray(PNG)
    png[16:24] = struct.pack(">II", 100_000, 100_000)  # IHDR's width and height
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


PIXEL_BOMB = _pixel_bomb()
NAMES = st.one_of(
    st.sampled_from(
        [
            "cat/1.png",
            "dog/2.png",
            "img/a.png",
            "a.png",
            "index.csv",
            "img/index.csv",
            "../evil.png",
            "/etc/passwd.png",
            "C:/x.png",
            "a/../../b.png",
            "..\\x.png",
            "__MACOSX/._a.png",
            "img/",
            "notes.txt",
            "ünïcode/ü.png",
            "img/a b.png",
        ]
    ),
    st.text("abc/._-", min_size=1, max_size=10).map(lambda s: s + ".png"),
)
CONTENT = st.sampled_from(["png", "truncated png", "pixel bomb", "random", "empty", "bomb", "index"])


def _entry_bytes(kind: str, names: list[str], rng_bytes: bytes) -> bytes:
    if kind == "png":
        return PNG
    if kind == "truncated png":
        return PNG[: len(PNG) // 2]
    if kind == "pixel bomb":
        return PIXEL_BOMB
    if kind == "random":
        return rng_bytes
    if kind == "bomb":  # compresses ~1000:1, expands past 20 × MAX_UPLOAD
        return b"\0" * (24 * MAX_UPLOAD)
    if kind == "index":
        listed = [n for n in names if n.endswith(".png")] + ["missing.png"]
        return ("image,label\n" + "".join(f"{n},{i % 2}\n" for i, n in enumerate(listed))).encode()
    return b""


@st.composite
def zip_uploads(draw) -> bytes:
    names = draw(st.lists(NAMES, min_size=1, max_size=6))
    kinds = draw(st.lists(CONTENT, min_size=len(names), max_size=len(names)))
    random_bytes = draw(st.binary(max_size=64))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, kind in zip(names, kinds, strict=True):
            if name.endswith("/"):
                archive.writestr(zipfile.ZipInfo(name), b"")
            else:
                archive.writestr(name, _entry_bytes(kind, names, random_bytes))
    content = buffer.getvalue()
    damage = draw(st.sampled_from(["none", "none", "truncate", "flip"]))
    if damage == "truncate":
        content = content[: draw(st.integers(0, len(content) - 1))]
    elif damage == "flip" and len(content) > 40:
        at = draw(st.integers(30, len(content) - 1))
        content = content[:at] + bytes([content[at] ^ 0xFF]) + content[at + 1 :]
    return content


@settings(max_examples=examples(100))
@given(content=zip_uploads())
def test_zip_uploads_are_read_or_refused_clearly(clients, project, storage, content):
    body = check_upload(clients["editor"], project, storage, "images.zip", content)
    if body is not None:
        dataset_dir = storage / "files" / "datasets"
        for path in dataset_dir.rglob("*"):  # nothing escaped the dataset's folder
            assert path.resolve().is_relative_to(dataset_dir.resolve())


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["../evil.png", "cat/1.png"], "zip slip"),
        (["/abs/1.png", "cat/1.png"], "zip slip"),
        (["cat/1.png", "a/../../b.png"], "zip slip"),
    ],
)
def test_zip_slip_names_are_refused_and_nothing_is_written(clients, project, storage, names, message):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, PNG)
    response = upload(clients["editor"], project.pk, "slip.zip", buffer.getvalue())
    assert response.status_code == 400 and message in response.json()["error"]
    assert not (storage / "evil.png").exists() and files_under(storage / "files") == set()


def test_a_zip_bomb_is_refused_before_it_fills_the_disk(clients, project, storage):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("cat/1.png", PNG)
        for index in range(4):
            archive.writestr(f"dog/{index}.png", b"\x89PNG\r\n\x1a\n" + b"\0" * (8 * MAX_UPLOAD))
    assert len(buffer.getvalue()) < MAX_UPLOAD
    response = upload(clients["editor"], project.pk, "bomb.zip", buffer.getvalue())
    assert response.status_code == 400 and "expands to more than" in response.json()["error"]
    assert Dataset.objects.count() == 0 and files_under(storage / "files") == set()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # Found by the fuzzers: each was a 500 (csv.Error, zlib.error, NotImplementedError).
        (b"a,b,c\nrow,\r=1,2\nx,y,z\n", "line 2 has 2 field(s)"),  # a lone \r ends a line
        (b'a,b\n"' + b"x" * 200_000 + b'",1\n1\n', "could not be read as CSV"),  # past csv's field limit
    ],
)
def test_csv_the_standard_library_cannot_parse_is_a_clear_400(clients, project, storage, content, message):
    response = upload(clients["editor"], project.pk, "odd.csv", content)
    assert response.status_code == 400 and message in response.json()["error"], response.json()
    assert Dataset.objects.count() == 0


def _zip_with_index() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("index.csv", "image,label\n" + "".join(f"img/{i}.png,{i % 2}\n" for i in range(50)))
        for index in range(50):
            archive.writestr(f"img/{index}.png", PNG)
    return buffer.getvalue()


def test_a_corrupt_deflate_stream_is_a_clear_400(clients, project, storage):
    content = bytearray(_zip_with_index())
    start = 30 + len("index.csv")  # the index's compressed bytes follow its local header
    content[start + 5 : start + 25] = bytes(20)
    response = upload(clients["editor"], project.pk, "corrupt.zip", bytes(content))
    assert response.status_code == 400 and "index.csv could not be extracted" in response.json()["error"]
    assert Dataset.objects.count() == 0 and files_under(storage / "files") == set()


def test_an_archive_needing_an_unknown_zip_version_is_a_clear_400(clients, project, storage):
    content = bytearray(_zip_with_index())
    central = content.rfind(b"PK\x05\x06")
    directory = int.from_bytes(content[central + 16 : central + 20], "little")
    content[directory + 6] = 99  # "version needed to extract" of the first entry: 9.9
    response = upload(clients["editor"], project.pk, "future.zip", bytes(content))
    assert response.status_code == 400 and "not a valid zip file" in response.json()["error"]
    assert Dataset.objects.count() == 0


def test_an_image_declaring_billions_of_pixels_is_a_clear_400(clients, project, storage):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("cat/1.png", PNG)
        archive.writestr("dog/1.png", PIXEL_BOMB)
    response = upload(clients["editor"], project.pk, "pixels.zip", buffer.getvalue())
    assert response.status_code == 400 and "decompression bomb" in response.json()["error"], response.json()
    assert Dataset.objects.count() == 0 and files_under(storage / "files") == set()


def test_a_local_header_name_that_is_not_utf8_is_a_clear_400(clients, project, storage):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("cat/ü.png", PNG)  # a non-ASCII name: flagged UTF-8
        archive.writestr("dog/1.png", PNG)
    content = bytearray(buffer.getvalue())
    at = content.index("ü".encode())  # the first entry's local header (the directory keeps it right)
    content[at] = 0xBC
    response = upload(clients["editor"], project.pk, "names.zip", bytes(content))
    assert response.status_code == 400 and "could not be extracted" in response.json()["error"], (
        response.json()
    )
    assert Dataset.objects.count() == 0 and files_under(storage / "files") == set()


def test_an_encrypted_entry_is_a_clear_400(clients, project, storage):
    content = bytearray(_zip_with_index())
    central = content.rfind(b"PK\x05\x06")
    directory = int.from_bytes(content[central + 16 : central + 20], "little")
    content[6] |= 1  # "encrypted" in the first entry's local header and its directory entry
    content[directory + 8] |= 1
    response = upload(clients["editor"], project.pk, "locked.zip", bytes(content))
    assert response.status_code == 400 and "encrypted" in response.json()["error"], response.json()
    assert Dataset.objects.count() == 0 and files_under(storage / "files") == set()


@pytest.mark.parametrize(
    "values",
    [
        # Found by the fuzzers: each was a 500 (numpy refusing the histogram's bins, or JSON's
        # lack of infinity in the column statistics).
        ["inf", "-39473", "2"],
        ["1e400", "1", "2"],
        ["1e308", "-1e308", "0"],
        ["1e308", "1e308", "1e308"],
        ["100000000000000000", "100000000000000000", "100000000000000000"],  # one value near 1e17
        ["1700000000000000000", "1700000000000000016", "1700000000000000032"],  # nanosecond times
    ],
)
def test_extreme_numbers_get_statistics_that_json_can_hold(clients, project, storage, values):
    content = ("x,label\n" + "".join(f"{value},{index % 2}\n" for index, value in enumerate(values))).encode()
    response = upload(clients["editor"], project.pk, "extreme.csv", content)
    assert response.status_code == 201, response.json()
    column = response.json()["columns"][0]
    assert column["type"] == "numeric"
    json.dumps(column, allow_nan=False)  # finite numbers or null only
    if "histogram" in column:
        assert sum(column["histogram"]["counts"]) <= len(values)


def test_huge_numbers_in_later_row_groups_do_not_overflow_the_statistics(
    clients, project, storage, monkeypatch
):
    from analyses import ingest

    monkeypatch.setattr(ingest, "ROW_GROUP_ROWS", 2)  # statistics merged group by group
    content = b"x,label\n0,a\n0,b\n1e200,a\n1e200,b\n"
    response = upload(clients["editor"], project.pk, "groups.csv", content)
    assert response.status_code == 201, response.json()
    column = response.json()["columns"][0]
    assert column["max"] == 1e200 and column["std"] is None  # its variance overflows: not a number
    json.dumps(column, allow_nan=False)


def test_an_upload_past_the_size_limit_is_a_413(clients, project, storage):
    response = upload(clients["editor"], project.pk, "big.csv", b"a,b\n" + b"1,2\n" * MAX_UPLOAD)
    assert response.status_code == 413 and "upload limit" in response.json()["error"]
    assert Dataset.objects.count() == 0 and files_under(storage / "scratch") == set()
