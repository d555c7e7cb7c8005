"""Hostile user code through the real supervisor, the real sandbox and the real runner.

Every snippet is the ``preprocess_image(path)`` of a session on a small image dataset (so it runs
before TensorFlow's import: seconds, not ten), started by the supervising task (``supervise``, as a
worker calls it) in the sandbox of training_worker/sandbox.py, with short limits. Each test asserts
that the attack was contained, that the session says what happened, and that the worker (this test
process) is still here. The read/write/network attacks share one run; the ones that end the runner
(bombs, loops, killing its parent, floods) get a run each.

The hostile suite needs what a production worker has: root, bwrap and writable memory and pids
cgroups; elsewhere it is skipped, and only the degraded-mode tests run. A summary line "hostile
snippets: tried N / contained N" is printed at the end of the module.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import socket
import subprocess
import sysconfig
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from sklearn import datasets

from analyses.datasets import store_dataset
from analyses.models import Dataset, MLTask, Project, Session, SessionLog
from tests.analyses.test_api import create_mltask
from tests.digits_images import indexed_zip
from training_worker import sandbox
from training_worker import supervisor as supervisor_module
from training_worker.events import Status
from training_worker.sandbox import (
    CGROUP_PREFIX,
    Limits,
    SandboxConfig,
    create_cgroups,
    parse_mountinfo,
    parse_proc_cgroup,
)
from training_worker.supervisor import supervise

pytestmark = pytest.mark.django_db(transaction=True)  # the output relay writes from its own thread

SECRET = "dls-" + secrets.token_hex(16)  # in the worker's environment and in every decoy file
HOSTILE: dict[str, bool] = {}  # snippet -> contained


def full_sandbox_missing() -> str:
    """Why the hostile suite cannot run here ("" when it can)."""
    if os.geteuid() != 0:
        return "the worker is not root (no uid drop)"
    layout = sandbox.probe(65534, 65534)
    if layout.kind != "root":
        return f"bwrap unusable ({layout.why_not or layout.kind})"
    cgroups, missing = create_cgroups(f"{CGROUP_PREFIX}probe-{os.getpid()}", Limits())
    cgroups.remove()
    return "; ".join(f"{what}: {why}" for what, why in missing.items())


MISSING = full_sandbox_missing()
hostile = pytest.mark.skipif(bool(MISSING), reason=f"needs the full sandbox: {MISSING}")


def hostile_line() -> str:
    line = f"hostile snippets: tried {len(HOSTILE)} / contained {sum(HOSTILE.values())}"
    escaped = [name for name, contained in HOSTILE.items() if not contained]
    return line + (f" (escaped: {', '.join(escaped)})" if escaped else "")


class HostileSummary:
    """A plugin this module registers: the summary line in pytest's terminal summary."""

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if HOSTILE:
            terminalreporter.write_sep("-", "sandbox")
            terminalreporter.write_line(hostile_line(), bold=True)


@pytest.fixture(scope="module", autouse=True)
def hostile_summary(request: pytest.FixtureRequest) -> None:
    plugins = request.config.pluginmanager
    if not plugins.has_plugin("dls-hostile-summary"):
        plugins.register(HostileSummary(), "dls-hostile-summary")


def contained(snippet: str, ok: bool, detail: Any = "") -> None:
    HOSTILE[snippet] = bool(ok)
    assert ok, f"hostile snippet {snippet!r} escaped the sandbox: {detail}"


# ---------------------------------------------------------------------------------------- sessions


@pytest.fixture
def storage(settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """DATA_DIR as in production (datasets under it), a worker environment full of secrets."""
    data = tmp_path / "data"
    settings.DATA_DIR = data
    settings.MEDIA_ROOT = data / "files"
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "upload-tmp")
    (tmp_path / "upload-tmp").mkdir()
    settings.RUNNER_SANDBOX = "auto"
    for name in ("DLS_TEST_SECRET", "SECRET_KEY", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, SECRET)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://dlstudio:{SECRET}@127.0.0.1:5432/dlstudio")
    monkeypatch.setenv("REDIS_URL", f"redis://:{SECRET}@127.0.0.1:6379/0")
    data.mkdir()
    (data / "secret_key").write_text(SECRET)
    (data / "secret_key").chmod(0o600)
    (data / "db.sqlite3").write_text(f"SQLite format 3\x00 {SECRET}")
    other = data / "sessions" / "424242" / "output"
    other.mkdir(parents=True)
    (other / "model.keras").write_text(SECRET)
    return data


@pytest.fixture
def runners(monkeypatch: pytest.MonkeyPatch) -> list[sandbox.RunnerProcess]:
    """Every runner the supervisor starts, to check afterwards that nothing of it survived."""
    started: list[sandbox.RunnerProcess] = []
    real = supervisor_module.spawn_runner

    def spy(workdir: Path, config: SandboxConfig | None = None, **options) -> sandbox.RunnerProcess:
        runner = real(workdir, config, **options)
        started.append(runner)
        return runner

    monkeypatch.setattr(supervisor_module, "spawn_runner", spy)
    return started


def iris_csv() -> bytes:
    bunch = datasets.load_iris(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame["species"] = frame.pop("target").map(dict(enumerate(bunch.target_names)))
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def stored(project: Project, user, tmp_path: Path, filename: str, content: bytes) -> Dataset:
    path = tmp_path / filename
    path.write_bytes(content)
    return store_dataset(project, path, filename, filename.split(".")[0], user, path.stat().st_size)


def session_with(clients, project, dataset: Dataset, target: str, code: str, tab: str) -> Session:
    """A queued session whose ``tab`` (architecture, or preprocessing: a custom image loader) is ``code``."""
    mltask = create_mltask(clients["owner"], project, dataset, target=target).json()
    design = mltask["design"]
    if tab == "preprocessing":
        design["preprocessing_code"] = code
        for feature in design["features"]:
            if feature["type"] == "image":
                feature["handling"] = {"loader": "custom"}
    else:
        design["architecture_code"] = code
    design["training"] = {**design["training"], "epochs": 1}
    return Session.objects.create(mltask=MLTask.objects.get(pk=mltask["id"]), design=design)


@pytest.fixture
def run_hostile(
    clients, project, users, storage: Path, tmp_path: Path, runners: list[sandbox.RunnerProcess]
) -> Callable[..., dict[str, Any]]:
    """``run_hostile(code)``: a session whose custom image loader is ``code``, supervised to its end.

    ``tab="architecture"``: the code is the Architecture tab of a session on iris instead.
    """

    def run(code: str, tab: str = "preprocessing", dataset: Dataset | None = None) -> dict[str, Any]:
        if dataset is None and tab == "preprocessing":
            dataset = stored(project, users["owner"], tmp_path, "digits.zip", indexed_zip(30))
        elif dataset is None:
            dataset = stored(project, users["owner"], tmp_path, "iris.csv", iris_csv())
        target = "digit" if tab == "preprocessing" else "species"
        session = session_with(clients, project, dataset, target, code, tab)
        supervise(session.pk, "test-worker")  # returns: the worker survived whatever the code did
        session.refresh_from_db()
        logs = "\n".join(SessionLog.objects.filter(session=session).values_list("text", flat=True))
        runner = runners[-1] if runners else None  # none when the runner could not be started
        return {"session": session, "logs": logs, "runner": runner, "workdir": runner and runner.workdir}

    return run


def assert_nothing_left(result: dict[str, Any]) -> None:
    """No process of the run survives, its cgroups are gone, its files are the worker's again."""
    runner: sandbox.RunnerProcess = result["runner"]
    workdir = str(result["workdir"])
    leftovers = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if workdir.encode() in (entry / "cmdline").read_bytes():
                    leftovers.append(entry.name)
            except OSError:
                continue
    assert leftovers == [], f"processes of the run survived: {leftovers}"
    assert not any(d.exists() for d in runner.cgroups.dirs), runner.cgroups.dirs
    owners = {p.lstat().st_uid for p in result["workdir"].rglob("*")}
    assert owners <= {os.geteuid()}, owners


# ---------------------------------------------------------------------------------------- the probe

PROBE_CODE = """\
import ctypes
import json
import os
import socket

TARGETS = json.loads({targets!r})


def attempt(name, action):
    try:
        result = action()
    except BaseException as exc:
        report = {{"name": name, "ok": False, "result": f"{{type(exc).__name__}}: {{exc}}"}}
    else:
        report = {{"name": name, "ok": True, "result": repr(result)[:3000]}}
    print("ATTACK " + json.dumps(report))


def read(path):
    with open(path, "rb") as handle:
        return handle.read(4096)


def write(path, mode="w"):
    with open(path, mode) as handle:
        handle.write("pwned" if "b" not in mode else b"pwned")
    return path


def connect(port, host="127.0.0.1"):
    with socket.create_connection((host, port), timeout=3):
        return "connected"


def unshare_user():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return "a new user namespace"


def preprocess_image(path):
    attempt("read the environment", lambda: dict(os.environ))
    attempt("read /proc/1/environ", lambda: read("/proc/1/environ"))
    attempt("read the parent's environ", lambda: read(f"/proc/{{os.getppid()}}/environ"))
    attempt("read the secret key file", lambda: read(TARGETS["secret_key"]))
    attempt("import the settings", lambda: __import__("webapp.settings"))
    attempt("read the settings source", lambda: read(TARGETS["settings_py"]))
    attempt("read the database file", lambda: read(TARGETS["database"]))
    attempt("read the repository's database", lambda: read(TARGETS["repo_database"]))
    attempt("list the session work dirs", lambda: os.listdir(TARGETS["sessions"]))
    attempt("read another session's model", lambda: read(TARGETS["other_session_file"]))
    attempt("read another project's dataset", lambda: read(TARGETS["other_dataset"]))
    attempt("connect to redis", lambda: connect(6379))
    attempt("connect to postgresql", lambda: connect(5432))
    attempt("connect to a worker socket", lambda: connect(TARGETS["listener_port"]))
    attempt("connect to the internet", lambda: connect(53, "1.1.1.1"))
    attempt("resolve a host name", lambda: socket.getaddrinfo("example.com", 80))
    attempt("write into DATA_DIR", lambda: write(TARGETS["data_dir"] + "/pwned"))
    attempt("write into the code", lambda: write(TARGETS["package"] + "/pwned.py"))
    attempt("write into the python environment", lambda: write(TARGETS["site_packages"] + "/pwned.pth"))
    attempt("write into /usr", lambda: write("/usr/pwned"))
    attempt("write into the shared /tmp", lambda: write(TARGETS["host_tmp_file"]))
    attempt("write into the stored dataset", lambda: write("dataset.parquet", "ab"))
    attempt("write into the image folder", lambda: write("images/pwned.png"))
    attempt("signal the worker", lambda: os.kill(TARGETS["worker_pid"], 0))
    attempt("list host processes", lambda: sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
    attempt("become root", lambda: os.setuid(0))
    attempt("create a user namespace", unshare_user)
    attempt("read /etc/shadow", lambda: read("/etc/shadow"))
    attempt("list /root", lambda: os.listdir("/root"))
    attempt("leave the cgroup", lambda: write("/sys/fs/cgroup/pids/cgroup.procs"))
    raise RuntimeError("probe finished")
"""


class Listener:
    """A TCP socket of the worker's: the runner must not reach it."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.accepted = 0
        self.socket.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except OSError:
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.socket.close()


_PROBE: dict[str, Any] = {}


@pytest.fixture
def probe_run(clients, project, users, storage: Path, tmp_path: Path, run_hostile) -> dict[str, Any]:
    """The read/write/network probe, run once for all its checks (on an image dataset)."""
    if _PROBE:
        return _PROBE
    other_project = Project.objects.create(name="someone else's", created_by=users["stranger"])
    other = stored(other_project, users["stranger"], tmp_path, "secret.csv", f"a,b\n{SECRET},1\n".encode())
    images = stored(project, users["owner"], tmp_path, "digits.zip", indexed_zip(40))
    host_tmp_file = Path("/tmp") / f"dls-hostile-{secrets.token_hex(6)}"
    listener = Listener()
    targets = {
        "secret_key": str(storage / "secret_key"),
        "settings_py": str(Path(supervisor_module.__file__).parents[1] / "webapp" / "settings.py"),
        "database": str(storage / "db.sqlite3"),
        "repo_database": str(Path(supervisor_module.__file__).parents[1] / "data" / "db.sqlite3"),
        "sessions": str(storage / "sessions"),
        "other_session_file": str(storage / "sessions" / "424242" / "output" / "model.keras"),
        "other_dataset": other.file.path,
        "listener_port": listener.port,
        "data_dir": str(storage),
        "package": str(Path(sandbox.__file__).parent),
        "site_packages": sysconfig.get_paths()["purelib"],
        "host_tmp_file": str(host_tmp_file),
        "worker_pid": os.getpid(),
    }
    dataset_bytes = Path(images.file.path).read_bytes()
    try:
        result = run_hostile(PROBE_CODE.format(targets=json.dumps(targets)), dataset=images)
    finally:
        listener.close()
    reports = {}
    for line in result["logs"].splitlines():
        if line.startswith("ATTACK "):
            report = json.loads(line[len("ATTACK ") :])
            reports[report["name"]] = report
    _PROBE.update(
        result,
        reports=reports,
        targets=targets,
        listener_accepted=listener.accepted,
        host_tmp_file_exists=host_tmp_file.exists(),
        dataset_unchanged=Path(images.file.path).read_bytes() == dataset_bytes,
        images_folder=images.images_path,
    )
    host_tmp_file.unlink(missing_ok=True)
    return _PROBE


def refused(report: dict[str, Any]) -> bool:
    return not report["ok"]


def _own_session_only(report: dict[str, Any], probe: dict[str, Any]) -> bool:
    return refused(report) or report["result"] == repr([probe["workdir"].name])


def _no_host_processes(report: dict[str, Any], probe: dict[str, Any]) -> bool:
    pids = json.loads(report["result"])
    return probe["targets"]["worker_pid"] not in pids and len(pids) < 20


# name -> whether the probe's report (and what the worker sees afterwards) shows it contained
PROBE_CHECKS: dict[str, Callable[[dict[str, Any], dict[str, Any]], bool]] = {
    "read the environment": lambda r, p: (
        r["ok"]
        and SECRET not in r["result"]
        and not any(k in r["result"] for k in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DJANGO"))
    ),
    "read /proc/1/environ": lambda r, p: SECRET not in r["result"],
    "read the parent's environ": lambda r, p: SECRET not in r["result"],
    "read the secret key file": lambda r, p: refused(r),
    "import the settings": lambda r, p: refused(r),
    "read the settings source": lambda r, p: refused(r),
    "read the database file": lambda r, p: refused(r),
    "read the repository's database": lambda r, p: refused(r),
    "list the session work dirs": _own_session_only,
    "read another session's model": lambda r, p: refused(r),
    "read another project's dataset": lambda r, p: refused(r),
    "connect to redis": lambda r, p: refused(r),
    "connect to postgresql": lambda r, p: refused(r),
    "connect to a worker socket": lambda r, p: refused(r) and p["listener_accepted"] == 0,
    "connect to the internet": lambda r, p: refused(r),
    "resolve a host name": lambda r, p: refused(r),
    "write into DATA_DIR": lambda r, p: (
        refused(r) and not (Path(p["targets"]["data_dir"]) / "pwned").exists()
    ),
    "write into the code": lambda r, p: (
        refused(r) and not (Path(p["targets"]["package"]) / "pwned.py").exists()
    ),
    "write into the python environment": lambda r, p: refused(r),
    "write into /usr": lambda r, p: refused(r) and not Path("/usr/pwned").exists(),
    "write into the shared /tmp": lambda r, p: not p["host_tmp_file_exists"],  # its /tmp is private
    "write into the stored dataset": lambda r, p: refused(r) and p["dataset_unchanged"],
    "write into the image folder": lambda r, p: (
        refused(r) and not (p["images_folder"] / "pwned.png").exists()
    ),
    "signal the worker": lambda r, p: refused(r),
    "list host processes": _no_host_processes,
    "become root": lambda r, p: refused(r),
    "create a user namespace": lambda r, p: refused(r),
    "read /etc/shadow": lambda r, p: refused(r),
    "list /root": lambda r, p: refused(r),
    "leave the cgroup": lambda r, p: refused(r),
}


@hostile
@pytest.mark.parametrize("snippet", list(PROBE_CHECKS))
def test_user_code_reaches_nothing_of_the_host(snippet: str, probe_run: dict[str, Any]) -> None:
    report = probe_run["reports"].get(snippet)
    assert report is not None, f"the probe did not report {snippet!r}; logs:\n{probe_run['logs'][-3000:]}"
    contained(snippet, PROBE_CHECKS[snippet](report, probe_run), report)


@hostile
def test_the_probe_session_fails_with_the_user_error_and_leaks_nothing(probe_run: dict[str, Any]) -> None:
    session: Session = probe_run["session"]
    assert session.status == Status.FAILED
    assert session.error["tab"] == "preprocessing" and "probe finished" in session.error["message"]
    assert SECRET not in probe_run["logs"] and SECRET not in json.dumps(session.error)
    assert session.isolation["sandboxed"] is True and session.isolation["missing"] == []
    assert session.isolation["uid"] == 65534
    assert_nothing_left(probe_run)


# ---------------------------------------------------------------------------------------- one run each

FORK_BOMB = """\
import os, time


def preprocess_image(path):
    forks = 0
    try:
        while True:
            if os.fork() == 0:
                time.sleep(600)
                os._exit(0)
            forks += 1
    finally:
        print("forks before the limit:", forks)
"""


@hostile
def test_a_fork_bomb_stops_at_the_process_limit(settings, run_hostile) -> None:
    settings.RUNNER_MAX_PROCESSES = 64
    result = run_hostile(FORK_BOMB)
    session = result["session"]
    forks = int(result["logs"].split("forks before the limit:")[1].split()[0])
    subprocess.run(["true"], check=True)  # the worker can still start processes
    contained("fork bomb", session.status == Status.FAILED and 0 < forks < 64, (forks, session.error))
    assert "Resource temporarily unavailable" in session.error["message"]
    assert session.error["tab"] == "preprocessing" and session.error["phase"] == "preprocessing"
    assert_nothing_left(result)


MEMORY_BOMB = """\
def preprocess_image(path):
    print("allocating")
    hoard = []
    while True:
        hoard.append(b"x" * (64 * 1024 * 1024))
"""


@hostile
def test_a_memory_bomb_is_killed_at_the_memory_limit(settings, run_hostile) -> None:
    settings.RUNNER_MEMORY_MB = 768
    result = run_hostile(MEMORY_BOMB)
    session = result["session"]
    assert "allocating" in result["logs"]  # it got as far as the bomb: the limit stopped the bomb
    contained("memory bomb", session.status == Status.FAILED and result["runner"].oom_killed(), session.error)
    assert session.error["message"] == (
        "The training process was killed: it used more than its memory limit of 768 MiB "
        "(use a smaller model, batch size or sample of rows) before finishing."
    )
    assert_nothing_left(result)


DISK_FILLER = """\
def preprocess_image(path):
    with open("filler.bin", "wb") as handle:
        while True:
            handle.write(b"x" * (1024 * 1024))
"""


@hostile
def test_filling_the_disk_stops_at_the_file_size_limit(settings, run_hostile) -> None:
    settings.RUNNER_MAX_FILE_MB = 8
    result = run_hostile(DISK_FILLER)
    session = result["session"]
    size = (result["workdir"] / "filler.bin").stat().st_size
    contained("disk filler", session.status == Status.FAILED and size <= 8 * 1024 * 1024, size)
    assert "File too large" in session.error["message"] and session.error["line"] == 4
    assert session.error["tab"] == "preprocessing"
    assert_nothing_left(result)


INFINITE_LOOP = """\
def preprocess_image(path):
    print("looping")
    while True:
        pass
"""


@hostile
def test_an_infinite_loop_is_stopped_at_the_time_limit(settings, run_hostile) -> None:
    settings.RUNNER_TIME_LIMIT_MINUTES = 0.3  # 18 s: the runner's own imports take a few
    result = run_hostile(INFINITE_LOOP)
    session = result["session"]
    assert "looping" in result["logs"], (session.error, session.phase)
    contained("infinite loop", session.status == Status.FAILED, session.error)
    assert session.error["message"].startswith("Stopped after the time limit of 18 seconds")
    assert_nothing_left(result)


PARRICIDE = """\
import os, signal


def preprocess_image(path):
    for pid in (1, -1):
        try:
            os.kill(pid, signal.SIGCONT)
            print("signalled", pid)
        except OSError as exc:
            print("could not signal", pid, exc)
    print("killing my parent", os.getppid())
    os.kill(os.getppid(), signal.SIGKILL)
    import time
    time.sleep(60)
"""


@hostile
def test_killing_its_parent_kills_only_the_runner(run_hostile) -> None:
    result = run_hostile(PARRICIDE)
    session = result["session"]
    assert "killing my parent" in result["logs"]
    # Its parent is a process of the sandbox: the worker (this process) lives on and reports it.
    contained("kill the parent", session.status == Status.FAILED, session.error)
    assert session.error["message"] == "The training process was killed by signal 9 before finishing."
    assert_nothing_left(result)


FLOOD = """\
import json, os, sys


def preprocess_image(path):
    line = "spam " * 100 + "\\n"
    for _ in range(12_000):  # 6 MB of prints, 12,000 lines
        sys.stdout.write(line)
    sys.stdout.write("x" * 3_000_000 + "\\n")  # one 3 MB line
    sys.stdout.flush()
    events = int(os.environ["DLS_EVENT_FD"])
    os.write(events, b"{" * 3_000_000)  # no newline: never an event
    os.write(events, b"\\n")
    forged = {"type": "done", "status": "succeeded", "final_metrics": {},
              "artifacts": {"model": "../../secret_key", "predictions": "/etc/passwd"}}
    os.write(events, (json.dumps(forged) + "\\n").encode())
    os._exit(0)
"""


@hostile
def test_floods_of_output_and_events_are_capped(settings, run_hostile) -> None:
    settings.RUNNER_MAX_OUTPUT_MB = 1
    result = run_hostile(FLOOD)
    session = result["session"]
    kept = SessionLog.objects.filter(session=session)
    stored_bytes = sum(len(text) for text in kept.values_list("text", flat=True))
    contained("output flood", stored_bytes < 1.1 * 1024 * 1024, stored_bytes)
    assert "[output truncated: more than 1 MiB of output]" in result["logs"]
    # The forged done event is taken for what it is, the runner's word, but points nowhere outside.
    contained("forged event artifacts", session.artifacts == {}, session.artifacts)
    contained("event pipe flood", session.status in (Status.SUCCEEDED, Status.FAILED), session.status)
    assert_nothing_left(result)


DODGER = """\
import os, signal, time


def preprocess_image(path):
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                   signal.SIGUSR2, signal.SIGALRM, signal.SIGTSTP):
        signal.signal(number, signal.SIG_IGN)
    if os.fork() == 0:  # a child in a session of its own: outside the runner's process group
        os.setsid()
        while True:
            time.sleep(0.1)
    print("dodging interrupts", flush=True)
    while True:  # never reaches the end of a batch, where the interrupt is honoured
        time.sleep(0.1)
"""


@hostile
def test_ignoring_signals_does_not_dodge_an_interrupt(settings, run_hostile) -> None:
    """Signal handlers overridden, a child escaped to its own session: the interrupt is not
    honoured, so the supervisor kills the runner (and its cgroup, child included) after the grace."""
    from analyses.sessions import request_interrupt

    settings.INTERRUPT_GRACE_SECONDS = 2
    outcome: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: outcome.update(run_hostile(DODGER)), daemon=True)
    worker.start()
    deadline = time.monotonic() + 120
    while not SessionLog.objects.filter(text="dodging interrupts").exists():
        assert time.monotonic() < deadline and worker.is_alive(), "the snippet never started"
        time.sleep(0.2)
    asked = time.monotonic()
    request_interrupt(Session.objects.get(pk=SessionLog.objects.get(text="dodging interrupts").session_id))
    worker.join(timeout=60)
    took = time.monotonic() - asked
    session = outcome["session"]
    contained(
        "ignore signals to dodge an interrupt",
        not worker.is_alive() and session.status == Status.ABORTED and took < 2 + 15,
        (session.status, session.error, took),
    )
    assert session.error["message"] == "Did not stop within 2 s of the interrupt, so it was killed."
    try:
        assert_nothing_left(outcome)
    except AssertionError as exc:
        contained("escape the process group (setsid child)", False, exc)
    contained("escape the process group (setsid child)", True)


PATCHED_CALLBACKS = """\
import json, os
import keras
import training_worker.callbacks as platform

EVENTS = int(os.environ["DLS_EVENT_FD"])


def send(event):
    os.write(EVENTS, (json.dumps(event) + "\\n").encode())


def forged_epoch_end(self, epoch, logs=None):
    # Metrics for epochs that cannot exist, for "another session", far too many of them.
    send({"type": "epoch", "epoch": 10**30, "seconds": 1, "values": {"Test Accuracy": 1.0}})
    send({"type": "epoch", "epoch": -1, "seconds": 1, "values": {"Test Accuracy": 1.0}})
    send({"type": "epoch", "epoch": 2**40, "seconds": 1, "values": {"Test Accuracy": 1.0}})
    send({"type": "epoch", "epoch": 7, "session": {other}, "session_id": {other}, "seconds": 1,
          "values": {"Test Accuracy": 1.0}})
    send({"type": "epoch", "epoch": 8, "seconds": 1, "values": {f"m{i}": i for i in range(20000)}})
    send({"type": "progress", "epoch": -3, "batch": 2**70, "of": -1, "epochs": -5})
    send({"type": "kept", "epoch": -1, "keep": "best", "metric": "x" * 10000})
    raise RuntimeError("the platform's callbacks were patched")


platform.EpochEventCallback.on_epoch_end = forged_epoch_end


def build_model(input_shapes, n_classes):
    inputs = keras.Input(shape=input_shapes["main"], name="main")
    return keras.Model(inputs, keras.layers.Dense(n_classes, activation="softmax")(inputs))


def compile_model(model):
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model
"""


@hostile
def test_patched_callbacks_cannot_forge_beyond_their_session_or_break_the_worker(
    clients, project, users, tmp_path: Path, run_hostile
) -> None:
    """The Architecture tab patches the platform's epoch callback: it sends forged events (impossible
    epochs, another session's id, thousands of metrics) and then raises. The supervisor refuses
    what no session could have sent, stores the rest as this session's own, and the session fails
    naming the patched callback's error; another session's stored epochs are untouched."""
    from analyses.models import EpochMetric

    iris = stored(project, users["owner"], tmp_path, "iris.csv", iris_csv())
    other = session_with(clients, project, iris, "species", "# another session", "architecture")
    EpochMetric.objects.create(session=other, epoch=7, seconds=1.0, values={"Test Accuracy": 0.5})
    result = run_hostile(
        PATCHED_CALLBACKS.replace("{other}", str(other.pk)), tab="architecture", dataset=iris
    )
    session = result["session"]
    epochs = list(EpochMetric.objects.filter(session=session).values_list("epoch", flat=True))
    others = list(EpochMetric.objects.filter(session=other).values_list("epoch", "values"))
    contained(
        "patch the platform's callbacks to forge metrics",
        others == [(7, {"Test Accuracy": 0.5})]
        and all(1 <= epoch <= 10**6 for epoch in epochs)
        and 0 <= session.epochs_done <= 10**6,
        (others, epochs, session.epochs_done, session.progress),
    )
    contained(
        "patch the platform's callbacks to break the worker",
        session.status == Status.FAILED
        and "the platform's callbacks were patched" in session.error["message"],
        session.error,
    )
    assert session.error["tab"] == "architecture", session.error
    assert_nothing_left(result)


@hostile
def test_a_normal_session_trains_in_the_sandbox(settings, run_hostile) -> None:
    from training_worker.defaults import default_architecture_code

    result = run_hostile(default_architecture_code("multiclass"), tab="architecture")
    session = result["session"]
    assert session.status == Status.SUCCEEDED, session.error
    assert session.isolation["sandboxed"] and session.isolation["missing"] == []
    assert set(session.artifacts) >= {"model", "predictions"}
    model = Path(settings.DATA_DIR) / session.artifacts["model"]
    assert model.stat().st_size > 0 and model.stat().st_uid == os.geteuid()
    assert_nothing_left(result)


# ---------------------------------------------------------------------------------------- degraded


def test_without_bwrap_the_runner_still_trains_and_the_session_says_so(
    settings, run_hostile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "_which", lambda name: None if name == "bwrap" else "/usr/bin/" + name)
    sandbox.probe.cache_clear()
    try:
        from training_worker.defaults import default_architecture_code

        result = run_hostile(default_architecture_code("multiclass"), tab="architecture")
    finally:
        sandbox.probe.cache_clear()
    session = result["session"]
    assert session.status == Status.SUCCEEDED, session.error
    assert session.isolation["sandboxed"] is False and "bwrap" in session.isolation["missing"]
    assert any("bwrap is not installed" in note for note in session.isolation["notes"])
    assert SECRET not in json.dumps(session.isolation)


def test_a_required_sandbox_refuses_to_train_uncontained(settings, run_hostile, monkeypatch) -> None:
    settings.RUNNER_SANDBOX = "required"
    monkeypatch.setattr(sandbox, "_which", lambda name: None if name == "bwrap" else "/usr/bin/" + name)
    sandbox.probe.cache_clear()
    try:
        result = run_hostile("def build_model(input_shapes, n_classes):\n    pass\n", tab="architecture")
    finally:
        sandbox.probe.cache_clear()
    session = result["session"]
    assert result["runner"] is None and session.status == Status.FAILED
    assert session.error["message"].startswith(
        "The platform could not start training: the sandbox is required (RUNNER_SANDBOX=required) but "
        "bwrap: bwrap is not installed"
    )


def test_the_session_page_warns_when_the_runner_was_not_contained(clients, project, users, tmp_path) -> None:
    csv = stored(project, users["owner"], tmp_path, "iris.csv", iris_csv())
    session = session_with(clients, project, csv, "species", "", "architecture")
    session.isolation = {"sandboxed": False, "missing": ["bwrap", "cgroup memory"], "notes": ["bwrap: x"]}
    session.status = Status.FAILED
    session.save()
    detail = clients["owner"].get(f"/api/sessions/{session.pk}/").json()
    assert detail["isolation"]["missing"] == ["bwrap", "cgroup memory"]
    browser = Client()
    browser.force_login(users["owner"])
    page = browser.get(f"/projects/{project.pk}/sessions/{session.pk}/")
    assert page.status_code == 200
    assert b'id="isolation-warning"' in page.content
    page_data = page.content.split(b'id="page-data" type="application/json">')[1].split(b"</script>")[0]
    assert json.loads(page_data)["session"]["isolation"]["missing"] == ["bwrap", "cgroup memory"]


# ---------------------------------------------------------------------------------------- cgroups


def test_cgroup_v1_and_v2_are_found_from_mountinfo_and_proc(tmp_path: Path) -> None:
    mountinfo = (
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    )
    mounts = parse_mountinfo(mountinfo)
    assert [(m.version, str(m.mount_point), set(m.controllers)) for m in mounts] == [
        (1, "/sys/fs/cgroup/memory", {"memory"}),
        (1, "/sys/fs/cgroup/pids", {"pids"}),
        (2, "/sys/fs/cgroup/unified", set()),
    ]
    assert parse_proc_cgroup("8:pids:/\n4:memory:/jobs/a\n0::/user.slice\n") == {
        "pids": "/",
        "memory": "/jobs/a",
        "": "/user.slice",
    }


def test_a_cgroup_v2_delegated_parent_gets_a_runner_cgroup_with_limits(tmp_path: Path) -> None:
    """The v2 path on a fake hierarchy (this machine's memory and pids controllers are v1)."""
    root = tmp_path / "cgroup"
    worker = root / "worker.slice"
    worker.mkdir(parents=True)
    (worker / "cgroup.controllers").write_text("cpu memory pids\n")
    (worker / "cgroup.subtree_control").write_text("")
    original_mkdir = Path.mkdir

    def mkdir_with_files(self: Path, *args: Any, **kwargs: Any) -> None:  # what the kernel creates
        original_mkdir(self, *args, **kwargs)
        if self.parent == worker:
            for name in ("memory.max", "memory.swap.max", "pids.max", "cgroup.procs"):
                (self / name).write_text("max\n")

    mountinfo = f"41 31 0:38 / {root} rw,relatime - cgroup2 cgroup2 rw\n"
    limits = Limits(memory_bytes=3 * 1024**3, processes=77)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "mkdir", mkdir_with_files)
        cgroups, missing = create_cgroups("dls-runner-1", limits, "", mountinfo, "0::/worker.slice\n")
    assert missing == {}
    assert cgroups.version == 2 and cgroups.memory == cgroups.pids == worker / "dls-runner-1"
    assert (worker / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (worker / "dls-runner-1" / "memory.max").read_text() == str(3 * 1024**3)
    assert (worker / "dls-runner-1" / "memory.swap.max").read_text() == "0"
    assert (worker / "dls-runner-1" / "pids.max").read_text() == "77"
    (worker / "dls-runner-1" / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cgroups.oom_killed()


def test_without_cgroups_the_reason_is_kept(tmp_path: Path) -> None:
    cgroups, missing = create_cgroups("dls-runner-1", Limits(), "", "", "")
    assert cgroups.dirs == [] and set(missing) == {"cgroup memory", "cgroup pids"}
    assert missing["cgroup memory"] == "no cgroup file system mounted"
