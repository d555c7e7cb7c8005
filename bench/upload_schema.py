"""Upload + schema time of a big CSV through the real API, against pandas reading the same file.

Generates a CSV of about ``--megabytes`` (20 columns: 10 numeric, 10 categorical, some missing),
uploads it to an embedded studio (``manage.py serve``, a real process) and times the request that
validates it, converts it to Parquet and computes every column's statistics; then times
``pandas.read_csv(path, engine="pyarrow")`` on the same file. Also prints the web process's peak
resident memory during the upload (its VmHWM, reset just before the upload) and the CPU seconds
each side used (steadier than wall time on a shared machine). ``--rounds`` alternates upload and
pandas read so that both see the same load, and the median ratio is the figure: the first pandas
read in a fresh process is slower (it faults in gigabytes of new memory), later ones are its best.
``--csv`` keeps the generated file for the next run.

    .venv/bin/python -m bench.upload_schema [--megabytes 1024] [--rounds 3] [--csv /tmp/big.csv]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all threads): steadier than wall time on a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Round:
    upload_seconds: float
    upload_cpu: float  # the web process's
    peak_mb: float  # the web process's peak RSS during the upload
    pandas_seconds: float
    pandas_cpu: float

    @property
    def ratio(self) -> float:
        return self.upload_seconds / self.pandas_seconds

    def report(self) -> None:
        api, pandas = self.upload_seconds, self.pandas_seconds
        print(f"upload + schema (API):             {api:7.2f} s (web process CPU {self.upload_cpu:.2f} s)")
        print(f'pandas.read_csv(engine="pyarrow"): {pandas:7.2f} s (CPU {self.pandas_cpu:.2f} s)')
        print(f"ratio:                             {self.ratio:7.2f}x")
        print(f"web process peak RSS: {self.peak_mb:.0f} MB during the upload")


def upload(
    client: Client, base: str, project: int, csv_path: Path, pid: int
) -> tuple[float, float, float, int]:
    """One upload through the API: seconds, web CPU seconds, web peak RSS (VmHWM reset first), rows stored."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    boundary = "bench-boundary-7f3a"
    cpu, started = cpu_seconds(pid), time.perf_counter()
    response = client.http.post(
        f"{base}/api/projects/{project}/datasets/",
        data=FileBody(csv_path, boundary),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=3600,
    )
    seconds = time.perf_counter() - started
    if response.status_code != 201:
        raise SystemExit(f"upload failed: {response.status_code} {response.text[:500]}")
    return seconds, cpu_seconds(pid) - cpu, peak_rss_mb(pid), response.json()["rows"]


def read_with_pandas(csv_path: Path) -> tuple[float, float, int]:
    """Seconds, CPU seconds (all threads) and rows of ``pandas.read_csv(engine="pyarrow")``."""
    cpu, started = time.process_time(), time.perf_counter()
    rows = len(pd.read_csv(csv_path, engine="pyarrow"))
    return time.perf_counter() - started, time.process_time() - cpu, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3, help="upload, then pandas read, this many times")
    parser.add_argument("--csv", type=Path, help="keep the generated CSV here, and reuse it when present")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as scratch:
        csv_path = args.csv or Path(scratch) / "big.csv"
        if not csv_path.exists():
            started = time.perf_counter()
            rows = generate(csv_path, args.megabytes)
            print(f"generated {rows:,} rows × 20 columns in {time.perf_counter() - started:.1f} s")
        size = csv_path.stat().st_size
        print(f"CSV: {csv_path} ({size / 2**20:.0f} MB)")

        os.environ["MAX_UPLOAD_BYTES"] = str(size + 2**20)  # the studio's cap is 1 GB by default
        rounds: list[Round] = []
        with embedded_studio(Path(scratch) / "studio") as studio:
            web = studio.processes[0]
            client = Client(studio.base)
            project = client.call("POST", "/api/projects/", json={"name": "bench"})["id"]
            baseline = peak_rss_mb(web.pid)
            for _ in range(args.rounds):  # alternated, so that both sides see the same machine load
                seconds, cpu, peak, stored_rows = upload(client, studio.base, project, csv_path, web.pid)
                pandas_seconds, pandas_cpu, pandas_rows = read_with_pandas(csv_path)
                assert stored_rows == pandas_rows, (stored_rows, pandas_rows)
                rounds.append(Round(seconds, cpu, peak, pandas_seconds, pandas_cpu))
                rounds[-1].report()

    if len(rounds) > 1:
        print(f"median ratio of {len(rounds)} rounds: {statistics.median(r.ratio for r in rounds):.2f}x")
    print(f"web process after start-up: {baseline:.0f} MB")


if __name__ == "__main__":
    main()
