"""Faults survived, on real processes: a distributed studio (uvicorn + Celery workers + PostgreSQL)
on a Redis server of its own, so that flushing, killing and restarting Redis touches nothing else
on the machine. Workers are started, killed (pool child: tests/journey/test_training_journey.py;
main process; whole process group) and replaced as the tests go, so the tests of this module run
in order and share one studio. Runs when REDIS_URL and DATABASE_URL are set (.ci/run sets both).

What each fault must end in is in the README ("Faults").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis as redis_client

from tests.journey.test_training_journey import runner_pids
from tests.live import (
    FINAL,
    PYTHON,
    Client,
    Studio,
    _base_env,
    _fresh_postgres,
    _spawn,
    _stop,
    _wait_healthy,
    breast_cancer_csv,
    free_port,
)

pytestmark = pytest.mark.distributed

TRAIN_TASK = "training_worker.tasks.train_session"
# The promise: lost within 30 s (heartbeat 5 s + SESSION_LOST_AFTER_SECONDS + a reaper pass).
LOST_WITHIN_SECONDS = 30
PREPARE_DATABASE = (
    "from django.core.management import call_command; "
    "call_command('migrate', interactive=False, verbosity=0); call_command('bootstrap', no_demo=True)"
)
MAX_FILE_MB = 1  # RUNNER_MAX_FILE_MB of this studio's workers: the default model is ~50 kB, a big one is not


# ---------------------------------------------------------------------------------------- processes


class PrivateRedis:
    """A redis-server of this module's own (nothing on disk, as on these machines)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.directory / f"redis-{self.starts}.log", "w")  # noqa: SIM115 - as long as the process
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        self.process = subprocess.Popen(
            ["redis-server", *options, "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + 20
        while True:
            with contextlib.suppress(redis_client.RedisError):
                if self.client().ping():
                    return
            if time.time() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.1)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def client(self) -> redis_client.Redis:
        return redis_client.Redis.from_url(self.url, socket_timeout=5)


@dataclass
class Worker:
    process: subprocess.Popen
    name: str  # its node name's prefix: faults-<n>@
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class Faults:
    studio: Studio
    redis: PrivateRedis
    port: int
    web: subprocess.Popen
    client: Client
    mltask: int
    default_code: str
    workers: list[Worker] = field(default_factory=list)

    def start_worker(self, wait: bool = True) -> Worker:
        """A Celery worker as `make worker` starts it (one slot, no GPU), named faults-<n>."""
        number = len(self.workers) + 1
        command = [PYTHON, "manage.py", "trainingworker", "--", "-n", f"faults-{number}@%h"]
        process = _spawn(self.studio, command, f"worker-{number}.log")
        worker = Worker(process, f"faults-{number}@", self.studio.data_dir / f"worker-{number}.log")
        self.workers.append(worker)
        if wait:
            self.wait_online(worker)
        return worker

    def wait_online(self, worker: Worker, timeout: float = 90) -> None:
        def online() -> bool:
            listed = self.client.call("GET", "/api/workers/")
            return any(w["online"] and w["name"].startswith(worker.name) for w in listed)

        wait_until(online, timeout, f"worker {worker.name} online", worker.log)

    def ensure_worker(self) -> Worker:
        alive = [w for w in self.workers if w.process.poll() is None]
        return alive[-1] if alive else self.start_worker()

    def restart_web(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.web.pid, signal.SIGKILL)
        self.web.wait()
        self.web = _spawn(self.studio, [PYTHON, "manage.py", "serve", "--port", str(self.port)], "web-2.log")
        _wait_healthy(self.studio, self.web)

    def patch(self, **fields: Any) -> None:
        self.client.patch(self.mltask, **fields)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, log: Path | None = None) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"not within {timeout} s: {what}\n{tail}")


@pytest.fixture(scope="module")
def faults(tmp_path_factory) -> Iterator[Faults]:
    redis_url, database_url = os.environ.get("REDIS_URL"), os.environ.get("DATABASE_URL")
    if not (redis_url and database_url):
        pytest.skip("the fault tests need REDIS_URL and DATABASE_URL (.ci/run sets both)")
    if not shutil.which("redis-server"):
        pytest.skip("the fault tests start a redis-server of their own: none installed")
    data_dir: Path = tmp_path_factory.mktemp("faults-data")
    redis = PrivateRedis(data_dir)
    redis.start()
    try:
        with _fresh_postgres(database_url) as database:
            port = free_port()
            studio = Studio(f"http://127.0.0.1:{port}", data_dir, _base_env(data_dir), mode="distributed")
            studio.env.update(
                REDIS_URL=redis.url,
                DATABASE_URL=database,
                WORKER_GPUS="none",
                SESSION_REDISPATCH_AFTER_SECONDS="4",
                SESSION_LOST_AFTER_SECONDS="10",
                RUNNER_MAX_FILE_MB=str(MAX_FILE_MB),
            )
            # The web process boots (seconds of imports) while the database is migrated, in one
            # process with the first admin's creation (each manage.py pays those imports again).
            web = _spawn(studio, [PYTHON, "manage.py", "serve", "--port", str(port)], "web.log")
            try:
                studio.manage("shell", "-c", PREPARE_DATABASE)
                _wait_healthy(studio, web)
                client = Client(studio.base)
                project = client.call("POST", "/api/projects/", json={"name": "faults"})["id"]
                dataset = client.upload(project, "breast_cancer.csv", breast_cancer_csv(), name="cancer")
                mltask = client.mltask(project, dataset["id"], "target")
                yield Faults(studio, redis, port, web, client, mltask["id"], mltask["architecture_code"])
            finally:
                _stop(studio)
    finally:
        redis.kill()


# ---------------------------------------------------------------------------------------- a page


class Page:
    """A browser's session page, as static/src/lib/live.js keeps it: one websocket, opened again
    whenever it closes, every message kept with the number of the connection it came on."""

    def __init__(self, base: str, token: str, session: int):
        self.url = base.replace("http", "ws", 1) + f"/ws/sessions/{session}/"
        self.base, self.token = base, token
        self.messages: list[tuple[int, dict]] = []
        self.connections = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()

    async def _run(self) -> None:
        import websockets
        from websockets.exceptions import WebSocketException

        headers = {"Authorization": f"Token {self.token}"}
        while not self.stopped.is_set():
            with contextlib.suppress(OSError, TimeoutError, WebSocketException):
                async with websockets.connect(
                    self.url, additional_headers=headers, origin=self.base, open_timeout=5
                ) as ws:
                    self.connections += 1
                    number = self.connections
                    while not self.stopped.is_set():
                        try:
                            message = json.loads(await asyncio.wait_for(ws.recv(), timeout=0.5))
                        except TimeoutError:
                            continue
                        self.messages.append((number, message))
                        if message["type"] == "done":
                            self.stopped.set()
            await asyncio.sleep(0.3)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)

    def live_epochs(self, since_connection: int = 0) -> list[int]:
        """Epochs pushed as events on a connection after ``since_connection``."""
        return [m["epoch"] for n, m in list(self.messages) if n > since_connection and m["type"] == "epoch"]

    def snapshots(self, since_connection: int = 0) -> list[dict]:
        return [m for n, m in list(self.messages) if n > since_connection and m["type"] == "snapshot"]

    def caught_up_after(self, connection: int) -> bool:
        """A newer connection got its snapshot, and then a live epoch: the page is live again."""
        return bool(self.snapshots(connection)) and bool(self.live_epochs(connection))

    def shown_epochs(self) -> list[int]:
        """What the page draws: every complete epoch of any snapshot or event, once."""
        shown = {e["epoch"] for m in self.snapshots() for e in m["metrics"] if not e.get("partial")}
        shown |= {m["epoch"] for _, m in list(self.messages) if m["type"] == "epoch" and not m.get("partial")}
        return sorted(shown)


# ---------------------------------------------------------------------------------------- helpers


def complete_epochs(state: dict) -> list[int]:
    return [e["epoch"] for e in state["metrics"] if not e.get("partial")]


def long_sessions(faults: Faults, count: int = 1) -> list[int]:
    """``count`` 500-epoch sessions, each with its runner up and at least one epoch stored."""
    faults.patch(training={"epochs": 500, "batch_size": 32})
    sessions = [faults.client.train(faults.mltask) for _ in range(count)]
    for session in sessions:
        faults.client.wait_for_epochs(session, 1, timeout=120)
        assert runner_pids(faults.studio.data_dir, session), "the runner is not running"
    return sessions


def processes_in_group(group: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                state, _, group_id = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
                if int(group_id) == group and state != "Z":
                    found.append(int(entry.name))
    return found


def pool_children(worker: Worker) -> list[int]:
    with contextlib.suppress(OSError):
        return [
            int(pid) for pid in Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
        ]
    return []


def wait_lost(
    faults: Faults, sessions: list[int], killed_at: float
) -> dict[int, tuple[float, list[str], dict]]:
    """Poll the sessions until final: {session: (seconds after the kill, statuses seen, last state)}."""
    seen: dict[int, list[str]] = {session: [] for session in sessions}
    ended: dict[int, tuple[float, list[str], dict]] = {}
    while len(ended) < len(sessions) and time.time() - killed_at < LOST_WITHIN_SECONDS + 10:
        for session in set(sessions) - set(ended):
            state = faults.client.call("GET", f"/api/sessions/{session}/")
            seen[session].append(state["status"])
            if state["status"] in FINAL:
                ended[session] = (time.time() - killed_at, seen[session], state)
        time.sleep(0.3)
    assert len(ended) == len(sessions), f"still not final {LOST_WITHIN_SECONDS + 10} s after the kill: {seen}"
    return ended


def assert_lost(faults: Faults, session: int, after: float, seen: list[str], state: dict, before: list[int]):
    """Failed, "worker lost", within the limit, never anything but running until then; the runner
    gone; the epochs stored before the kill still there; and never trained again."""
    assert state["status"] == "failed", (state["status"], state["error"])
    assert after < LOST_WITHIN_SECONDS, f"session {session} marked lost only after {after:.1f} s"
    assert set(seen) <= {"running", "failed"}, seen
    assert "Worker lost" in state["error"]["message"]
    assert runner_pids(faults.studio.data_dir, session) == [], "a runner outlived its worker"
    stored = complete_epochs(state)
    assert stored[: len(before)] == before and stored == list(range(1, len(stored) + 1))
    again = faults.client.call("GET", f"/api/sessions/{session}/")
    assert again["status"] == "failed" and complete_epochs(again) == stored, "trained on after it was lost"


# ---------------------------------------------------------------------------------------- the faults


def test_queued_with_no_worker_it_says_so_survives_a_lost_queue_and_runs_once_when_delivered_twice(faults):
    """No worker: the page says so. Redis loses the queue (FLUSHALL): the reconciler sends the
    session again. The same task delivered a second time: one run. Workers start: it runs."""
    faults.patch(training={"epochs": 1, "batch_size": 64})
    session = faults.client.train(faults.mltask)
    state = faults.client.call("GET", f"/api/sessions/{session}/")
    assert state["status"] == "queued"
    assert state["queue"] == {"queue": "training", "needs_gpu": False, "position": 1, "workers_online": 0}
    broker = faults.redis.client()
    wait_until(lambda: broker.llen("training") == 1, 10, "the session's message in the queue")

    broker.flushall()  # Redis keeps nothing on disk: a restart loses the queue just so
    # Two workers come up meanwhile (the next test kills them); nothing is left for them to take.
    workers = [faults.start_worker(wait=False) for _ in range(2)]

    def dispatched_again() -> bool:
        status = faults.client.call("GET", f"/api/sessions/{session}/")["status"]
        return broker.llen("training") == 1 or status != "queued"

    wait_until(dispatched_again, 30, "the lost session dispatched again", faults.studio.data_dir / "web.log")
    assert f"('{TRAIN_TASK}', {session})" in faults.studio.log_tail()  # the reconciler says so

    # A session waiting for a GPU worker (there is none) keeps its one message: the reconciler,
    # passing every ~1.3 s meanwhile, finds it there and sends nothing more.
    faults.patch(training={"runtime": {"gpus": 1}})
    waiting = faults.client.train(faults.mltask)
    waiting_since = time.time()
    faults.patch(training={"runtime": {"gpus": "auto"}})

    # The same task a second time, as a redelivery would bring it (kombu restores unacked
    # messages after its visibility timeout; a publisher may retry): both workers may race for it.
    from celery import Celery

    sender = Celery("faults-test", broker=faults.redis.url)
    duplicate = f"duplicate-{uuid.uuid4().hex}"
    sender.send_task(TRAIN_TASK, args=[session], queue="training", task_id=duplicate)
    sender.close()

    done = faults.client.wait(session, timeout=180)
    assert done["status"] == "succeeded", done["error"]
    assert complete_epochs(done) == [1]

    def duplicate_handled() -> bool:
        return any(f"[{duplicate}] succeeded" in w.log.read_text() for w in workers if w.log.exists())

    wait_until(duplicate_handled, 60, "the duplicate delivered and done")
    again = faults.client.call("GET", f"/api/sessions/{session}/")
    device_lines = [line for line in again["logs"] if line["text"].startswith("Keras backend")]
    assert len(device_lines) == 1, "trained more than once"
    assert (again["started_at"], again["ended_at"]) == (done["started_at"], done["ended_at"])
    assert broker.llen("training") == 0
    for worker in workers:
        faults.wait_online(worker)

    time.sleep(max(0.0, waiting_since + 8 - time.time()))  # past the threshold (4 s), a few passes
    state = faults.client.call("GET", f"/api/sessions/{waiting}/")
    assert (
        state["status"] == "queued" and state["queue"]["needs_gpu"] and not state["queue"]["workers_online"]
    )
    assert broker.llen("training.gpu") == 1, "a session whose message is queued was dispatched again"
    faults.client.call("POST", f"/api/sessions/{waiting}/abort/")


def test_workers_killed_mid_epoch_main_process_and_whole_process_group(faults):
    """Two sessions training on two workers. One worker's Celery main process gets SIGKILL (its
    pool child follows: Celery gives it PDEATHSIG), the other's whole process group (main and
    pool child at once). Both sessions: lost within the limit, runners gone, stored epochs kept,
    never trained again. A worker started meanwhile takes the next session (the next test's)."""
    while len([w for w in faults.workers if w.process.poll() is None]) < 2:
        faults.start_worker()
    sessions = long_sessions(faults, 2)
    by_name = {w.name: w for w in faults.workers if w.process.poll() is None}
    states = [faults.client.call("GET", f"/api/sessions/{session}/") for session in sessions]
    (main_killed,), (group_killed,) = (
        [w for name, w in by_name.items() if state["worker"].startswith(name)] for state in states
    )
    assert main_killed is not group_killed, "both sessions on one worker: a busy worker took another"
    assert pool_children(group_killed), "no pool child to kill"
    replacement = faults.start_worker(wait=False)  # comes up while they are being found lost
    before = {session: complete_epochs(state) for session, state in zip(sessions, states, strict=True)}

    killed_at = time.time()
    os.kill(main_killed.pid, signal.SIGKILL)
    os.killpg(group_killed.pid, signal.SIGKILL)

    ended = wait_lost(faults, sessions, killed_at)
    for session in sessions:
        assert_lost(faults, session, *ended[session], before=before[session])
    for worker in (main_killed, group_killed):
        worker.process.wait(timeout=10)
        wait_until(lambda w=worker: not processes_in_group(w.pid), 10, f"{worker.name}'s pool child gone")

    faults.wait_online(replacement)  # the next session (the next test's) runs on it


def test_redis_and_the_web_process_restarted_mid_training(faults):
    """Redis killed and restarted, then the web process killed and restarted, while a session
    trains: no stored epoch is lost, the page reconnects each time and catches up from the
    database, and the session ends cleanly (interrupted, its model kept). After the previous
    test, it is also the next session after two workers were killed: it trains normally."""
    worker = faults.ensure_worker()
    (session,) = long_sessions(faults)
    assert faults.client.call("GET", f"/api/sessions/{session}/")["worker"].startswith(worker.name)
    page = Page(faults.studio.base, faults.client.token, session)
    try:
        wait_until(lambda: page.live_epochs(), 30, "a live epoch on the page")

        connection = page.connections
        faults.redis.kill()
        time.sleep(1.5)  # epochs stored meanwhile are published to no one
        before_restart = faults.client.call("GET", f"/api/sessions/{session}/")
        faults.redis.start()
        wait_until(lambda: page.caught_up_after(connection), 60, "the page live again after Redis came back")
        snapshot = page.snapshots(connection)[0]
        stored_then = complete_epochs(before_restart)
        assert complete_epochs(snapshot)[: len(stored_then)] == stored_then

        connection = page.connections
        faults.restart_web()
        wait_until(lambda: page.caught_up_after(connection), 60, "the page live again after the web restart")

        faults.client.call("POST", f"/api/sessions/{session}/interrupt/")
        done = faults.client.wait(session, timeout=120)
        wait_until(lambda: page.stopped.is_set(), 30, "the done event on the page")
    finally:
        page.close()
    assert done["status"] == "interrupted", done["error"]
    stored = complete_epochs(done)
    assert stored == list(range(1, len(stored) + 1)), "a stored epoch is missing"
    assert page.shown_epochs() == stored, "the page does not show what was stored"
    assert done["final_metrics"]["Test ROC AUC"] > 0.5 and "model" in done["artifacts"]


def test_disk_full_while_saving_the_model_fails_clearly_and_keeps_no_model(faults):
    """A model bigger than the largest file a session may write (RUNNER_MAX_FILE_MB: EFBIG, as a
    full disk gives ENOSPC): the session fails saying so, and no model, whole or half, is kept.
    The worker that lived through the previous test's Redis restart takes it: it reconnected."""
    worker = faults.ensure_worker()
    big = faults.default_code.replace("Dense(64,", "Dense(1024,").replace("Dense(32,", "Dense(512,")
    assert big != faults.default_code
    faults.patch(architecture_code=big, training={"epochs": 1, "batch_size": 64})
    try:
        session = faults.client.train(faults.mltask)
        done = faults.client.wait(session, timeout=180)
    finally:
        faults.patch(architecture_code=faults.default_code)
    assert done["status"] == "failed" and done["worker"].startswith(worker.name)
    assert done["error"]["phase"] == "save"
    message = done["error"]["message"]
    assert message.startswith("Saving the model failed: a file would have been larger than the largest")
    assert f"({MAX_FILE_MB} MiB)" in message and "Nothing was kept" in message
    assert done["artifacts"] == []
    output = faults.studio.data_dir / "sessions" / str(session) / "output"
    assert not (output / "model.keras").exists() and not (output / ".partial").exists()
    assert faults.client.request("GET", f"/api/sessions/{session}/export/").status_code in (404, 409)
