"""Seconds from Train (POST /api/mltasks/{id}/sessions/) to the first batch (the first `progress`
websocket message) and to the first `epoch` message. The worker keeps a warm runner (TensorFlow
imported, training_worker.warm); the bench waits ``--pause`` seconds between sessions, as a user
would, so the next one finds it ready (``WARM_RUNNER=0`` in the environment measures without).

Embedded mode always; Redis mode (uvicorn + Celery worker + Redis + PostgreSQL) when REDIS_URL and
DATABASE_URL are set. The bare-Keras baseline in the same run is the time a fresh Python process
takes to import TensorFlow + Keras, build the same default model and finish one epoch on the same
data: the floor any design that starts a process per session pays.

    .venv/bin/python -m bench.first_epoch [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tests.live import PYTHON, REPO, Client, breast_cancer_csv, distributed_studio, embedded_studio

BARE_SCRIPT = """
import time, json, sys
started = time.perf_counter()
import numpy as np, pandas as pd, keras
from training_worker.defaults import default_architecture_code
frame = pd.read_csv(sys.argv[1])
x = frame.drop(columns=["target"]).to_numpy("float32")
x = (x - x.mean(0)) / x.std(0)
y = (frame["target"] == "malignant").to_numpy("float32")
ns = {"keras": keras, "np": np}
exec(default_architecture_code("binary"), ns)
model = ns["compile_model"](ns["build_model"]({"main": (x.shape[1],)}, 2))
model.fit(x, y, validation_data=(x[:100], y[:100]), epochs=1, batch_size=32, verbose=0)
print(json.dumps(time.perf_counter() - started))
"""


async def first_epoch_seconds(client: Client, mltask: int) -> tuple[float, float]:
    """(Train → first batch, Train → first epoch) in seconds."""
    import websockets

    first_batch = None
    started = time.perf_counter()
    session = client.train(mltask)
    url = client.base.replace("http", "ws", 1) + f"/ws/sessions/{session}/"
    async with websockets.connect(
        url, additional_headers={"Authorization": f"Token {client.token}"}, origin=client.base
    ) as ws:
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), timeout=300))
            if message["type"] == "progress" and first_batch is None:
                first_batch = time.perf_counter() - started
            if message["type"] == "epoch" or (message["type"] == "snapshot" and message["metrics"]):
                elapsed = time.perf_counter() - started
                break
            if message["type"] == "done":
                raise SystemExit(f"session {session} ended without an epoch: {message}")
    client.wait(session)
    return (elapsed if first_batch is None else first_batch), elapsed


def measure(studio, repeat: int, pause: float) -> list[tuple[float, float]]:
    client = Client(studio.base)
    project = client.call("POST", "/api/projects/", json={"name": "bench"})["id"]
    dataset = client.upload(project, "breast_cancer.csv", breast_cancer_csv())
    mltask = client.mltask(project, dataset["id"], "target")["id"]
    client.patch(mltask, training={"epochs": 1, "batch_size": 32})
    times = []
    for _ in range(repeat):
        time.sleep(pause)  # a user between two Trains: the warm runner is ready again
        times.append(asyncio.run(first_epoch_seconds(client, mltask)))
    return times


def report(name: str, times: list[tuple[float, float]], bare: float) -> None:
    batch = statistics.median(t[0] for t in times)
    epoch = statistics.median(t[1] for t in times)
    print(
        f"{name}: Train → first batch {batch:.2f} s, → first epoch event {epoch:.2f} s  "
        f"ratio to bare {epoch / bare:.2f}x"
    )


def bare_seconds(repeat: int) -> list[float]:
    with tempfile.NamedTemporaryFile("wb", suffix=".csv") as csv:
        csv.write(breast_cancer_csv())
        csv.flush()
        env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
        return [
            json.loads(
                subprocess.run(
                    [PYTHON, "-c", BARE_SCRIPT, csv.name], env=env, check=True, capture_output=True, text=True
                ).stdout
            )
            for _ in range(repeat)
        ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pause", type=float, default=20.0, help="seconds between two sessions")
    args = parser.parse_args()
    bare = statistics.median(bare_seconds(args.repeat))
    print(f"bare: fresh process → TF import → 1 epoch: {bare:.2f} s (median of {args.repeat})")
    with tempfile.TemporaryDirectory(prefix="bench-") as data, embedded_studio(Path(data)) as studio:
        report("embedded", measure(studio, args.repeat, args.pause), bare)
    redis_url, database_url = os.environ.get("REDIS_URL"), os.environ.get("DATABASE_URL")
    if redis_url and database_url:
        with (
            tempfile.TemporaryDirectory(prefix="bench-") as data,
            distributed_studio(Path(data), redis_url, database_url) as studio,
        ):
            report("redis   ", measure(studio, args.repeat, args.pause), bare)
    else:
        print("redis:    skipped (set REDIS_URL and DATABASE_URL)")


if __name__ == "__main__":
    main()
