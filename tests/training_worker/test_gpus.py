"""GPU scheduling: what a worker has, what a session asks for, who holds which GPU, and what the
runner is told. This machine has no GPU: workers are given GPU indices with ``WORKER_GPUS`` (what an
operator does to hand a worker a subset), and the runner's environment is what is checked."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from analyses.models import MLTask, Session
from tests.analyses.test_api import create_mltask
from training_worker import gpus, warm, workers
from training_worker.defaults import default_architecture_code
from training_worker.events import Status
from training_worker.sandbox import per_session_environment
from training_worker.supervisor import supervise

REPO_ROOT = Path(__file__).resolve().parents[2]
SMI_OUTPUT = "0, NVIDIA H200, 143771\n1, NVIDIA H200, 143771\n2, NVIDIA H200, 143771\n"


# ------------------------------------------------------------------------------ requests and queues


@pytest.mark.parametrize(
    ("value", "cleaned", "queue"),
    [
        (None, "auto", "training"),
        ("auto", "auto", "training"),
        (0, 0, "training"),
        (2, 2, "training.gpu"),
        ([1, 0, 1], [0, 1], "training.gpu"),
    ],
)
def test_a_gpu_request_is_cleaned_and_routed(value, cleaned, queue) -> None:
    assert gpus.parse_request(value) == cleaned
    assert gpus.queue_for(value) == queue


@pytest.mark.parametrize("value", [True, -1, 65, [], ["0"], [-1], "two", 1.5])
def test_a_bad_gpu_request_is_refused_with_the_forms_it_takes(value) -> None:
    with pytest.raises(gpus.GpuRequestError, match="gpus"):
        gpus.parse_request(value)


def test_one_slot_per_gpu_and_gpu_workers_also_take_cpu_work() -> None:
    two = [gpus.Gpu(0), gpus.Gpu(1)]
    assert gpus.worker_slots(two) == 2 and gpus.worker_queues(two) == ["training", "training.gpu"]
    assert gpus.worker_slots([]) == 1 and gpus.worker_queues([]) == ["training"]


# --------------------------------------------------------------------------------------- detection


def test_gpus_come_from_nvidia_smi_limited_to_the_workers_visible_devices() -> None:
    found = gpus.detect({}, smi=lambda: SMI_OUTPUT)
    assert [(g.index, g.name, g.memory_mb) for g in found] == [(i, "NVIDIA H200", 143771) for i in range(3)]
    assert [g.index for g in gpus.detect({"CUDA_VISIBLE_DEVICES": "2,0"}, smi=lambda: SMI_OUTPUT)] == [0, 2]
    assert gpus.detect({"CUDA_VISIBLE_DEVICES": ""}, smi=lambda: SMI_OUTPUT) == []
    assert gpus.detect({}, smi=lambda: None) == []  # nvidia-smi failed: no GPU claimed


def test_worker_gpus_overrides_detection() -> None:
    assert [g.index for g in gpus.detect({"WORKER_GPUS": "1, 0"}, smi=lambda: None)] == [0, 1]
    named = gpus.detect({"WORKER_GPUS": "1"}, smi=lambda: SMI_OUTPUT)
    assert named == [gpus.Gpu(1, "NVIDIA H200", 143771)]
    assert gpus.detect({"WORKER_GPUS": "none"}, smi=lambda: SMI_OUTPUT) == []
    with pytest.raises(gpus.GpuRequestError, match="WORKER_GPUS"):
        gpus.detect({"WORKER_GPUS": "first"}, smi=lambda: None)


def test_without_nvidia_smi_the_driver_device_nodes_are_counted(tmp_path) -> None:
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "null"):
        (tmp_path / name).touch()
    assert sorted(gpu.index for gpu in gpus._from_dev(tmp_path)) == [0, 1]


# ------------------------------------------------------------------------------------------ leases

TWO = [gpus.Gpu(0), gpus.Gpu(1)]


def test_a_lease_holds_its_gpus_until_released_and_tells_the_runner_which(tmp_path) -> None:
    first = gpus.acquire(1, TWO, tmp_path)
    second = gpus.acquire("auto", TWO, tmp_path)
    assert sorted(first.gpus + second.gpus) == [0, 1]
    assert second.environment() == {
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUDA_VISIBLE_DEVICES": str(second.gpus[0]),
    }
    assert gpus.busy(tmp_path, [0, 1]) == [0, 1]
    polls = []
    assert (
        gpus.acquire(
            1, TWO, tmp_path, should_stop=lambda: polls.append(1) or len(polls) > 2, poll_seconds=0.01
        )
        is None
    )
    first.release()
    third = gpus.acquire(1, TWO, tmp_path)
    assert third.gpus == first.gpus
    assert gpus.acquire(0, TWO, tmp_path).environment()["CUDA_VISIBLE_DEVICES"] == ""  # the CPU: no GPU
    assert gpus.acquire("auto", [], tmp_path).gpus == []


def test_several_gpus_are_taken_all_or_none(tmp_path) -> None:
    one = gpus.acquire([0], TWO, tmp_path)
    waits: list[list[int]] = []
    stop_after = time.monotonic() + 0.3
    both = gpus.acquire(
        2,
        TWO,
        tmp_path,
        should_stop=lambda: time.monotonic() > stop_after,
        on_wait=waits.append,
        poll_seconds=0.05,
    )
    assert both is None and waits == [[0]]
    assert gpus.busy(tmp_path, [0, 1]) == [0]  # GPU 1 was not kept by the request that could not be met
    one.release()
    assert gpus.acquire(2, TWO, tmp_path).gpus == [0, 1]


def test_a_request_the_worker_can_never_meet_says_why(tmp_path) -> None:
    with pytest.raises(gpus.GpusUnavailable, match="asks for 3 GPUs; this worker has 2"):
        gpus.acquire(3, TWO, tmp_path)
    with pytest.raises(gpus.GpusUnavailable, match="no GPU 5"):
        gpus.acquire([1, 5], TWO, tmp_path)


HOLD_GPU_1 = """
import sys, time
from pathlib import Path
from training_worker import gpus
gpus.acquire([1], [gpus.Gpu(0), gpus.Gpu(1)], Path(sys.argv[1]))
print("held", flush=True)
time.sleep(600)
"""


def test_gpus_held_by_another_process_are_busy_and_freed_when_it_dies(tmp_path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_GPU_1, str(tmp_path)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert gpus.busy(tmp_path, [0, 1]) == [1]
        assert gpus.acquire("auto", TWO, tmp_path).gpus == [0]  # the other process's GPU is skipped
    finally:
        holder.kill()
        holder.wait(10)
    assert gpus.acquire([1], TWO, tmp_path).gpus == [1]  # the kernel let its lock go: nothing stale


def test_only_the_gpu_variables_may_be_set_per_session() -> None:
    assert per_session_environment({"CUDA_VISIBLE_DEVICES": "1"}) == {"CUDA_VISIBLE_DEVICES": "1"}
    with pytest.raises(ValueError, match="LD_PRELOAD"):
        per_session_environment({"LD_PRELOAD": "/tmp/x.so"})


# ----------------------------------------------------------------------------------- worker command


@pytest.mark.parametrize(
    ("worker_gpus", "queues", "slots"), [("0,1", "training,training.gpu", "2"), ("none", "training", "1")]
)
def test_the_worker_command_gives_one_slot_per_gpu_and_the_queues_it_can_serve(worker_gpus, queues, slots):
    env = {**os.environ, "WORKER_GPUS": worker_gpus, "DATA_DIR": "/tmp/dls-command-test"}
    env.pop("WORKER_CONCURRENCY", None)
    printed = subprocess.run(
        [sys.executable, "manage.py", "trainingworker", "--dry-run", "--", "-n", "w1@%h"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert printed[printed.index("-Q") + 1] == queues
    assert printed[printed.index("--concurrency") + 1] == slots
    assert printed[-2:] == ["-n", "w1@%h"]


# ------------------------------------------------------------------------ sessions on given GPUs


def print_environment_code() -> str:
    """The default multiclass Architecture, printing the GPU variables the runner was given."""
    code = default_architecture_code("multiclass")
    printing = (
        '    print("GPUS SEEN:", repr(os.environ.get("CUDA_VISIBLE_DEVICES")), '
        'os.environ.get("CUDA_DEVICE_ORDER"))\n'
    )
    head, body = code.split("def build_model(input_shapes, n_classes):\n", 1)
    return "import os\n" + head + "def build_model(input_shapes, n_classes):\n" + printing + body


@pytest.fixture
def two_gpu_worker(settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "files"
    settings.DATA_DIR = tmp_path / "data"
    monkeypatch.setenv("WORKER_GPUS", "0,1")
    monkeypatch.setattr(workers, "_gpus_of_this_process", None)
    yield
    warm.shutdown()


def _session(client, project, dataset, runtime: dict, code: str | None = None) -> Session:
    mltask = create_mltask(client, project, dataset).json()
    patch = {"version": mltask["version"], "training": {"epochs": 1, "runtime": runtime}}
    if code is not None:
        patch["architecture_code"] = code
    response = client.patch(f"/api/mltasks/{mltask['id']}/", patch, content_type="application/json")
    assert response.status_code == 200, response.json()
    return Session.objects.create(
        mltask=MLTask.objects.get(pk=mltask["id"]), design=response.json()["design"]
    )


@pytest.mark.django_db(transaction=True)  # the supervisor's relay thread writes the console
def test_the_warm_runner_is_told_the_sessions_gpus_before_tensorflow_looks(
    clients, project, dataset, settings, two_gpu_worker
):
    settings.WARM_RUNNER = True
    warm.replenish()  # the spare imports TensorFlow now; the session's GPUs are only known at start
    session = _session(clients["owner"], project, dataset, {"gpus": [1]}, print_environment_code())
    supervise(session.pk, "embedded")
    session.refresh_from_db()
    console = "".join(log.text for log in session.logs.all())
    assert session.status == Status.SUCCEEDED, (session.error, console)
    assert (Path(settings.DATA_DIR) / "sessions" / str(session.pk)).is_symlink()  # the spare took it
    assert "GPUS SEEN: '1' PCI_BUS_ID" in console
    assert session.devices["gpus"] == [1]
    assert gpus.busy(Path(settings.DATA_DIR), [0, 1]) == []  # released when the session ended


@pytest.mark.django_db(transaction=True)
def test_a_session_waits_for_busy_gpus_and_can_be_aborted_meanwhile(
    clients, project, dataset, settings, two_gpu_worker
):
    held = gpus.acquire(2, TWO, Path(settings.DATA_DIR))  # another session holds both GPUs
    session = _session(clients["owner"], project, dataset, {"gpus": 1})
    supervisor = threading.Thread(target=supervise, args=(session.pk, "embedded"))
    supervisor.start()
    try:
        deadline = time.monotonic() + 30
        while Session.objects.get(pk=session.pk).phase != "waiting for GPU":
            assert time.monotonic() < deadline, "the session never said it waits for a GPU"
            time.sleep(0.1)
        assert Session.objects.get(pk=session.pk).status == Status.STARTING
        response = clients["owner"].post(f"/api/sessions/{session.pk}/abort/")
        assert response.status_code == 200, response.json()
        supervisor.join(30)
        assert not supervisor.is_alive()
    finally:
        held.release()
    session.refresh_from_db()
    assert session.status == Status.ABORTED
    assert "waiting for a GPU" in session.error["message"]
    assert not (Path(settings.DATA_DIR) / "sessions" / str(session.pk)).exists()  # no runner was started


@pytest.mark.django_db
def test_a_session_asking_for_more_gpus_than_the_worker_has_fails_saying_so(
    clients, project, dataset, settings, two_gpu_worker
):
    session = _session(clients["owner"], project, dataset, {"gpus": 3})
    supervise(session.pk, "embedded")
    session.refresh_from_db()
    assert session.status == Status.FAILED
    assert "asks for 3 GPUs; this worker has 2" in session.error["message"]


@pytest.mark.django_db
def test_runtime_settings_are_validated_and_kept(clients, project, dataset) -> None:
    client = clients["owner"]
    mltask = create_mltask(client, project, dataset).json()
    assert mltask["training"]["runtime"] == {"gpus": "auto", "memory_growth": True}

    def patch(runtime):
        current = client.get(f"/api/mltasks/{mltask['id']}/").json()
        return client.patch(
            f"/api/mltasks/{mltask['id']}/",
            {"version": current["version"], "training": {"runtime": runtime}},
            content_type="application/json",
        )

    assert patch({"gpus": [1, 0]}).json()["training"]["runtime"] == {"gpus": [0, 1], "memory_growth": True}
    kept = patch({"memory_growth": False}).json()["training"]["runtime"]
    assert kept == {"gpus": [0, 1], "memory_growth": False}  # a partial object changes what it names
    for bad, message in [
        ({"gpus": "all"}, "training.runtime.gpus must be"),
        ({"memory_growth": "yes"}, "memory_growth must be true or false"),
        ({"devices": 2}, "no setting devices"),
    ]:
        response = patch(bad)
        assert response.status_code == 400 and message in response.json()["error"], response.json()


@pytest.mark.django_db
def test_the_workers_list_shows_gpus_slots_queues_and_who_holds_each_gpu(clients, project, dataset, settings):
    from django.utils import timezone

    from analyses.models import Worker

    now = timezone.now()
    Worker.objects.create(
        name="celery@gpu-1",
        host="gpu-1",
        gpus=[{"index": 0, "name": "H200", "memory_mb": 1}, {"index": 1, "name": "H200", "memory_mb": 1}],
        slots=2,
        queues=["training", "training.gpu"],
        started_at=now,
        last_seen=now,
    )
    Worker.objects.create(
        name="celery@gone",
        host="gone",
        slots=1,
        queues=["training"],
        started_at=now,
        last_seen=now - timezone.timedelta(minutes=5),
    )
    session = _session(clients["owner"], project, dataset, {"gpus": 1})
    Session.objects.filter(pk=session.pk).update(
        status=Status.RUNNING, worker="celery@gpu-1", devices={"gpus": [1]}
    )
    listed = {w["name"]: w for w in clients["viewer"].get("/api/workers/").json()}
    gpu_worker = listed["celery@gpu-1"]
    assert gpu_worker["online"] and gpu_worker["slots"] == 2 and gpu_worker["busy_slots"] == 1
    assert [(g["index"], g["session"]) for g in gpu_worker["gpus"]] == [(0, None), (1, session.pk)]
    assert listed["celery@gone"]["online"] is False
    from django.test import Client

    assert Client().get("/api/workers/").status_code == 401
