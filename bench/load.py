"""What the load benchmarks share (bench.websocket_fanout, bench.api_status_load, bench.two_workers):
a studio of either mode, a small generated task to train, percentiles and the machine's load."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bench.epoch_overhead import make_csv
from tests.live import FINAL, Client, Studio, distributed_studio, embedded_studio

# The benchmarks' Redis database: not the tests' (13), which `make test` flushes at any time.
BENCH_REDIS_DB = 12


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min)"


def percentiles(values: list[float], *qs: float) -> list[float]:
    if not values:
        return [float("nan")] * len(qs)
    return [float(np.percentile(values, q)) for q in qs]


def distributed_urls() -> tuple[str, str] | None:
    redis_url, database_url = os.environ.get("REDIS_URL"), os.environ.get("DATABASE_URL")
    return (redis_url, database_url) if redis_url and database_url else None


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Variables the studio's processes inherit (tests.live copies os.environ when it starts them)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def studio(mode: str, workers: int = 1, **env: str) -> Iterator[Studio]:
    """A fresh studio: ``embedded`` (one process, SQLite; ``workers`` sessions at once) or
    ``distributed`` (uvicorn + ``workers`` Celery workers on REDIS_URL/DATABASE_URL)."""
    with tempfile.TemporaryDirectory(prefix="bench-") as data:
        if mode == "embedded":
            with environment(EMBEDDED_WORKERS=str(workers), **env), embedded_studio(Path(data)) as running:
                yield running
        else:
            urls = distributed_urls()
            if urls is None:
                raise SystemExit("distributed mode needs REDIS_URL and DATABASE_URL")
            with (
                environment(**env),
                distributed_studio(Path(data), *urls, workers=workers, redis_db=BENCH_REDIS_DB) as running,
            ):
                yield running


def classification_task(client: Client, rows: int, columns: int = 20, **training) -> int:
    """A project, a generated binary classification dataset and its ML task; returns the task's id."""
    with tempfile.TemporaryDirectory(prefix="bench-csv-") as scratch:
        csv = Path(scratch) / "classification.csv"
        make_csv(csv, rows, columns)
        project = client.call("POST", "/api/projects/", json={"name": "bench"})["id"]
        dataset = client.upload(project, csv.name, csv.read_bytes())
    mltask = client.mltask(project, dataset["id"], "label")["id"]
    if training:
        client.patch(mltask, training=training)
    return mltask


async def epoch_events(client: Client, session: int, limit: float = 1800) -> list[dict]:
    """The session's live `epoch` events (with the server's ``sent_at``) until its `done`."""
    import websockets

    url = client.base.replace("http", "ws", 1) + f"/ws/sessions/{session}/"
    headers = {"Authorization": f"Token {client.token}"}
    events = []
    async with websockets.connect(url, additional_headers=headers, origin=client.base) as ws:
        deadline = time.time() + limit
        while time.time() < deadline:
            message = json.loads(await asyncio.wait_for(ws.recv(), timeout=max(1, deadline - time.time())))
            if message["type"] == "epoch":
                events.append(message)
            elif message["type"] == "done" or (message["type"] == "snapshot" and message["status"] in FINAL):
                break
    return events
