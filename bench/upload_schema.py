"""Upload + schema time of a big CSV through the real API, against pandas reading the same file.

Generates a CSV of about ``--megabytes`` (20 columns: 10 numeric, 10 categorical, some missing),
uploads it to an embedded studio (``manage.py serve``, a real process) and times the request that
validates it, converts it to Parquet and computes every column's statistics; then times
``pandas.read_csv(path, engine="pyarrow")`` on the same file. Also prints the web process's peak
resident memory during the upload (its VmHWM, reset just before the upload).

    .venv/bin/python -m bench.upload_schema [--megabytes 1024]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tests.live import Client, embedded_studio

CHUNK_ROWS = 200_000
CITIES = np.array(["Paris", "Lyon", "Marseille", "Toulouse", "Nice", "Nantes", "Lille", "Rennes"])
GRADES = np.array(["A", "B", "C", "D", "E"])


def generate(path: Path, megabytes: int, seed: int = 7) -> int:
    """Write the CSV in chunks until it reaches the size; returns its row count."""
    rng = np.random.default_rng(seed)
    target = megabytes * 2**20
    rows = 0
    with open(path, "w", newline="") as handle:
        header = True
        while handle.tell() < target:
            n = CHUNK_ROWS
            frame = pd.DataFrame(
                {
                    **{f"x{i}": rng.normal(i, 1 + i, n).round(4) for i in range(6)},
                    **{f"k{i}": rng.integers(0, 10 ** (i + 1), n) for i in range(4)},
                    **{f"city{i}": rng.choice(CITIES, n) for i in range(4)},
                    **{f"grade{i}": rng.choice(GRADES, n) for i in range(4)},
                    "customer": np.char.add("C", rng.integers(0, 200_000, n).astype(str)),
                    "label": rng.choice(np.array(["yes", "no"]), n),
                }
            )
            frame.loc[rng.random(n) < 0.02, "x0"] = np.nan  # some missing values
            frame.to_csv(handle, index=False, header=header)
            header = False
            rows += n
    return rows


class FileBody:
    """A multipart body streamed from disk with a known length, so the client never holds the file."""

    def __init__(self, path: Path, boundary: str) -> None:
        self.head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{boundary}--\r\n".encode()
        self.size = path.stat().st_size
        self.file = open(path, "rb")  # noqa: SIM115 - closed by read() at the end
        self.parts = [self.head]

    def __len__(self) -> int:
        return len(self.head) + self.size + len(self.tail)

    def read(self, amount: int = 2**20) -> bytes:
        if self.parts:
            return self.parts.pop()
        if self.file.closed:
            return b""
        chunk = self.file.read(amount)
        if chunk:
            return chunk
        self.file.close()
        return self.tail


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as scratch:
        csv_path = Path(scratch) / "big.csv"
        started = time.perf_counter()
        rows = generate(csv_path, args.megabytes)
        size = csv_path.stat().st_size
        seconds = time.perf_counter() - started
        print(f"generated {size / 2**20:.0f} MB, {rows:,} rows × 20 columns in {seconds:.1f} s")

        os.environ["MAX_UPLOAD_BYTES"] = str(size + 2**20)  # the studio's cap is 1 GB by default
        with embedded_studio(Path(scratch) / "studio") as studio:
            web = studio.processes[0]
            client = Client(studio.base)
            project = client.call("POST", "/api/projects/", json={"name": "bench"})["id"]
            baseline = peak_rss_mb(web.pid)
            Path(f"/proc/{web.pid}/clear_refs").write_text("5")  # reset VmHWM: the peak of this upload only
            boundary = "bench-boundary-7f3a"
            started = time.perf_counter()
            response = client.http.post(
                f"{studio.base}/api/projects/{project}/datasets/",
                data=FileBody(csv_path, boundary),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                timeout=3600,
            )
            upload_seconds = time.perf_counter() - started
            if response.status_code != 201:
                raise SystemExit(f"upload failed: {response.status_code} {response.text[:500]}")
            peak = peak_rss_mb(web.pid)
            body = response.json()
            assert body["rows"] == rows, (body["rows"], rows)

        started = time.perf_counter()
        frame = pd.read_csv(csv_path, engine="pyarrow")
        pandas_seconds = time.perf_counter() - started
        assert len(frame) == rows
        del frame

    print(f"upload + schema (API):            {upload_seconds:7.2f} s")
    print(f'pandas.read_csv(engine="pyarrow"): {pandas_seconds:7.2f} s')
    print(f"ratio:                            {upload_seconds / pandas_seconds:7.2f}x")
    print(f"web process peak RSS: {peak:.0f} MB during the upload (after start-up: {baseline:.0f} MB)")


if __name__ == "__main__":
    main()
