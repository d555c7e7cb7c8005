"""Running DL Studio for real in tests: the web process (and a Celery worker), driven like a user.

Everything here talks to real processes over HTTP and websockets: no Django test client, no
eager Celery. Used by the journey tests, the browser test and the benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import requests

REPO = Path(__file__).resolve().parent.parent
PYTHON = str(REPO / ".venv" / "bin" / "python")
ADMIN = "admin"
PASSWORD = "journey-Passw0rd!"
FINAL = ("succeeded", "interrupted", "failed", "aborted")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Studio:
    base: str
    data_dir: Path
    env: dict[str, str]
    mode: str = "embedded"
    processes: list[subprocess.Popen] = field(default_factory=list)

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [PYTHON, "manage.py", *args], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=300
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def log_tail(self, name: str = "web.log", chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return (self.data_dir / name).read_text(errors="replace")[-chars:]
        return ""


def _base_env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        DATA_DIR=str(data_dir),
        DJANGO_SUPERUSER_USERNAME=ADMIN,
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
        SECRET_KEY="journey-" + uuid.uuid4().hex,
        INTERRUPT_GRACE_SECONDS="30",
        SESSION_LOST_AFTER_SECONDS="12",
    )
    return env


def _spawn(studio: Studio, args: list[str], log_name: str) -> subprocess.Popen:
    log = open(studio.data_dir / log_name, "w")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        args, cwd=REPO, env=studio.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    studio.processes.append(process)
    return process


def _wait_healthy(studio: Studio, web: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if web.poll() is not None:
            raise RuntimeError(f"the web process exited {web.returncode}:\n{studio.log_tail()}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(studio.base + "/api/health/", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"the web process did not answer within {timeout} s:\n{studio.log_tail()}")


def _stop(studio: Studio) -> None:
    for process in studio.processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    for process in studio.processes:
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def embedded_studio(data_dir: Path) -> Iterator[Studio]:
    """One process: SQLite, in-memory channel layer, in-process dispatcher."""
    port = free_port()
    studio = Studio(f"http://127.0.0.1:{port}", data_dir, _base_env(data_dir))
    studio.manage("migrate", "--noinput")
    studio.manage("bootstrap", "--no-demo")
    web = _spawn(studio, [PYTHON, "manage.py", "serve", "--port", str(port)], "web.log")
    try:
        _wait_healthy(studio, web)
        yield studio
    finally:
        _stop(studio)


def _redis_url_for_tests(redis_url: str, db: int = 13) -> str:
    """A Redis database of its own (flushed first) so no other queue's messages mix in."""
    import redis

    parsed = urlparse(redis_url)
    url = urlunparse(parsed._replace(path=f"/{db}"))
    redis.Redis.from_url(url).flushdb()
    return url


@contextlib.contextmanager
def _fresh_postgres(database_url: str) -> Iterator[str]:
    import psycopg

    parsed = urlparse(database_url)
    name = f"dls_journey_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin_url = urlunparse(parsed._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunparse(parsed._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def distributed_studio(
    data_dir: Path, redis_url: str, database_url: str, *, workers: int = 1, redis_db: int = 13
) -> Iterator[Studio]:
    """Web (uvicorn) + Celery worker processes (``workers``, one task slot each here), on real
    Redis (database ``redis_db``, flushed: the benchmarks take another than the tests') and PostgreSQL."""
    with _fresh_postgres(database_url) as database:
        port = free_port()
        studio = Studio(f"http://127.0.0.1:{port}", data_dir, _base_env(data_dir), mode="distributed")
        studio.env.update(REDIS_URL=_redis_url_for_tests(redis_url, redis_db), DATABASE_URL=database)
        studio.manage("migrate", "--noinput")
        studio.manage("bootstrap", "--no-demo")
        web = _spawn(studio, [PYTHON, "manage.py", "serve", "--port", str(port)], "web.log")
        # The worker as `make worker` starts it: sized to its GPUs (none here: WORKER_GPUS=none).
        studio.env.update(WORKER_GPUS="none")
        for number in range(workers):
            suffix = f"-{number + 1}" if number else ""
            _spawn(
                studio,
                [PYTHON, "manage.py", "trainingworker", "--", "-n", f"journey-{port}{suffix}@%h"],
                f"worker{suffix}.log",
            )
        try:
            _wait_healthy(studio, web)
            deadline = time.time() + 60
            while (
                len(
                    requests.get(
                        studio.base + "/api/health/", timeout=10, headers=Client(studio.base).headers
                    )
                    .json()
                    .get("workers")
                    or []
                )
                < workers
            ):
                if time.time() > deadline:
                    raise RuntimeError(
                        "no Celery worker answered within 60 s:\n" + studio.log_tail("worker.log")
                    )
                time.sleep(1)
            yield studio
        finally:
            _stop(studio)


class ApiError(AssertionError):
    pass


class Client:
    """The JSON API as a script user drives it (../shared/API.md)."""

    def __init__(self, base: str, username: str = ADMIN, password: str = PASSWORD):
        self.base = base
        self.http = requests.Session()
        response = self.http.post(
            base + "/api/token/", json={"username": username, "password": password}, timeout=30
        )
        if response.status_code != 200:
            raise ApiError(f"login as {username} failed: {response.status_code} {response.text}")
        self.token = response.json()["token"]
        self.http.headers["Authorization"] = f"Token {self.token}"

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.http.headers)

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.http.request(method, self.base + path, timeout=120, **kwargs)

    def call(self, method: str, path: str, expect: int | tuple[int, ...] = (200, 201), **kwargs):
        response = self.request(method, path, **kwargs)
        expected = (expect,) if isinstance(expect, int) else expect
        if response.status_code not in expected:
            raise ApiError(f"{method} {path} gave {response.status_code}: {response.text[:500]}")
        return response.json()

    def upload(self, project: int, filename: str, content: bytes, name: str = "") -> dict:
        return self.call(
            "POST",
            f"/api/projects/{project}/datasets/",
            files={"file": (filename, io.BytesIO(content))},
            data={"name": name},
        )

    def mltask(self, project: int, dataset: int, target: str, **extra) -> dict:
        analysis = self.call(
            "POST", f"/api/projects/{project}/analyses/", json={"name": "journey", "dataset": dataset}
        )
        return self.call("POST", f"/api/analyses/{analysis['id']}/mltasks/", json={"target": target, **extra})

    def patch(self, mltask: int, **fields) -> dict:
        current = self.call("GET", f"/api/mltasks/{mltask}/")
        return self.call("PATCH", f"/api/mltasks/{mltask}/", json={"version": current["version"], **fields})

    def train(self, mltask: int) -> int:
        return self.call("POST", f"/api/mltasks/{mltask}/sessions/", json={})["id"]

    def wait(self, session: int, timeout: float = 300, until=FINAL) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self.call("GET", f"/api/sessions/{session}/")
            if state["status"] in until:
                return state
            time.sleep(0.3)
        raise ApiError(f"session {session} still {state['status']} after {timeout} s")

    def wait_for_epochs(self, session: int, count: int = 1, timeout: float = 180) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self.call("GET", f"/api/sessions/{session}/")
            if len(state["metrics"]) >= count or state["status"] in FINAL:
                return state
            time.sleep(0.2)
        raise ApiError(f"session {session} reached no epoch {count} within {timeout} s")


async def _watch(
    base: str, token: str | None, session: int, limit: float, headers: dict | None = None
) -> list[dict]:
    import websockets

    url = base.replace("http", "ws", 1) + f"/ws/sessions/{session}/"
    extra = dict(headers or {})
    if token:
        extra["Authorization"] = f"Token {token}"
    messages: list[dict] = []
    async with websockets.connect(url, additional_headers=extra, origin=base, open_timeout=20) as ws:
        deadline = time.time() + limit
        while time.time() < deadline:
            message = json.loads(await asyncio.wait_for(ws.recv(), timeout=max(1, deadline - time.time())))
            messages.append(message)
            if message["type"] == "done" or (message["type"] == "snapshot" and message["status"] in FINAL):
                break
    return messages


def watch(
    base: str, token: str | None, session: int, limit: float = 300, headers: dict | None = None
) -> list[dict]:
    """Every websocket message of a session until its `done` (or a final snapshot)."""
    return asyncio.run(_watch(base, token, session, limit, headers))


def breast_cancer_csv() -> bytes:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
    return frame.to_csv(index=False).encode()
