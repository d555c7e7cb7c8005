"""Which GPUs a worker has, which of them a session asks for, and who holds which right now.

A worker's GPUs are found without importing TensorFlow (seconds, and GPU memory, in a process that
never trains): ``WORKER_GPUS`` when set (``"0,1"``, or ``"none"``), else ``nvidia-smi``, limited to
the worker's own ``CUDA_VISIBLE_DEVICES`` when it was started with one. Indices are nvidia-smi's
(PCI bus order); the runner is started with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so CUDA numbers them
the same way.

A session's runtime setting ``gpus`` (``training.runtime.gpus`` in the design):

- ``"auto"`` (default): one free GPU of the worker that takes it, or the CPU on a worker without one;
- ``0``: the CPU only (the runner sees no GPU);
- ``N``: N GPUs (more than one: MirroredStrategy, see ``devices.py``);
- ``[i, j]``: exactly those GPUs.

Sessions that need a GPU go to the ``training.gpu`` queue, which only GPU workers consume; the rest
go to ``training``, which every worker consumes (``queue_for``). A worker runs one task per GPU;
a session asking for several waits, ``starting``, until they are free. Who holds a GPU is an
exclusive ``flock`` on ``DATA_DIR/run/gpus/<host>/<index>.lock``: held across the worker's pool
processes and threads alike, and let go by the kernel when a worker dies, so nothing stale is left.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CPU_QUEUE = "training"  # every worker consumes it
GPU_QUEUE = "training.gpu"  # GPU workers only
AUTO = "auto"
MAX_GPUS = 64


class GpuRequestError(ValueError):
    """The runtime setting ``gpus`` is not one this module understands."""


class GpusUnavailable(RuntimeError):
    """This worker cannot give the session the GPUs it asks for (it does not have them)."""


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str = "GPU"
    memory_mb: int | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_request(value: Any) -> str | int | list[int]:
    """The cleaned ``gpus`` setting: ``"auto"``, a count, or a list of indices (sorted, unique)."""
    if value is None or value == AUTO:
        return AUTO
    if isinstance(value, bool):
        raise GpuRequestError(
            'gpus must be "auto", a number of GPUs (0 for the CPU) or a list of GPU indices.'
        )
    if isinstance(value, int):
        if not 0 <= value <= MAX_GPUS:
            raise GpuRequestError(f"gpus must be between 0 (the CPU only) and {MAX_GPUS}.")
        return value
    integers = isinstance(value, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in value)
    if value and integers:
        if any(not 0 <= i < MAX_GPUS for i in value):
            raise GpuRequestError(f"gpus lists GPU indices, from 0 to {MAX_GPUS - 1}.")
        return sorted(set(value))
    raise GpuRequestError(
        'gpus must be "auto" (one GPU if the worker has one), 0 (the CPU only), a number of GPUs, '
        "or a list of GPU indices such as [0, 1]."
    )


def needs_gpu(request: Any) -> bool:
    request = parse_request(request)
    return request != AUTO and request != 0


def queue_for(request: Any) -> str:
    """The Celery queue of a session asking for ``request``."""
    return GPU_QUEUE if needs_gpu(request) else CPU_QUEUE


def worker_queues(gpus: list[Gpu]) -> list[str]:
    return [CPU_QUEUE, GPU_QUEUE] if gpus else [CPU_QUEUE]


def worker_slots(gpus: list[Gpu]) -> int:
    """One task slot per GPU; one on a CPU worker."""
    return max(1, len(gpus))


# ------------------------------------------------------------------------------------- detection


def detect(environ: dict[str, str] | None = None, smi: Callable[[], str | None] | None = None) -> list[Gpu]:
    """This worker's GPUs (see the module docstring); [] on a CPU machine."""
    environ = os.environ if environ is None else environ
    declared = environ.get("WORKER_GPUS", "").strip()
    if declared:
        if declared.lower() in ("none", "cpu", "0 gpus"):
            return []
        indices = _indices(declared, "WORKER_GPUS")
        listed = {gpu.index: gpu for gpu in _from_smi((smi or _nvidia_smi)())}
        return [listed.get(i, Gpu(i)) for i in indices]
    found = _from_smi((smi or _nvidia_smi)()) if smi or shutil.which("nvidia-smi") else _from_dev()
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:  # the worker was given a subset (by index; UUIDs are left to CUDA)
        visible = visible.strip()
        if not visible or visible == "-1":
            return []
        if all(part.strip().isdigit() for part in visible.split(",")):
            wanted = _indices(visible, "CUDA_VISIBLE_DEVICES")
            found = [gpu for gpu in found if gpu.index in wanted]
    return found


def _indices(text: str, name: str) -> list[int]:
    try:
        indices = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise GpuRequestError(f'{name}={text!r}: use GPU indices such as "0,1", or "none".') from None
    if any(i < 0 for i in indices):
        raise GpuRequestError(f"{name}={text!r}: GPU indices are 0 or more.")
    return indices


def _nvidia_smi() -> str | None:
    command = shutil.which("nvidia-smi")
    if command is None:
        return None
    try:
        result = subprocess.run(
            [command, "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def _from_dev(dev: Path = Path("/dev")) -> list[Gpu]:
    """Without nvidia-smi (a slim image): the driver's device nodes, /dev/nvidia0, /dev/nvidia1, …"""
    try:
        names = [entry.name for entry in dev.iterdir()]
    except OSError:
        return []
    return [Gpu(int(name[6:])) for name in names if name.startswith("nvidia") and name[6:].isdigit()]


def _from_smi(output: str | None) -> list[Gpu]:
    gpus = []
    for line in (output or "").splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        memory = int(parts[2]) if parts[2].isdigit() else None
        gpus.append(Gpu(int(parts[0]), parts[1], memory))
    return gpus


# ---------------------------------------------------------------------------------------- leases


@dataclass
class Lease:
    """GPUs held by one session until :meth:`release` (or until the holding process dies)."""

    gpus: list[int]
    waited_seconds: float = 0.0
    _files: list[int] = field(default_factory=list, repr=False)

    def environment(self) -> dict[str, str]:
        """What the runner is started with: it sees these GPUs, numbered as nvidia-smi does."""
        return {
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
            "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in self.gpus),
        }

    def release(self) -> None:
        files, self._files = self._files, []
        for fd in files:
            os.close(fd)  # closing the descriptor lets the flock go


def lock_dir(data_dir: Path, host: str | None = None) -> Path:
    return Path(data_dir) / "run" / "gpus" / (host or socket.gethostname())


def acquire(
    request: Any,
    gpus: list[Gpu],
    data_dir: Path,
    should_stop: Callable[[], bool] = lambda: False,
    on_wait: Callable[[list[int]], None] = lambda busy: None,
    poll_seconds: float = 1.0,
) -> Lease | None:
    """Hold the GPUs ``request`` asks for among ``gpus``, waiting while others hold them.

    Returns None when ``should_stop()`` turns true while waiting (the session was aborted); raises
    :class:`GpusUnavailable` when this worker can never satisfy the request.
    """
    request = parse_request(request)
    if request == 0 or (request == AUTO and not gpus):
        return Lease([])
    have = [gpu.index for gpu in gpus]
    if isinstance(request, list):
        missing = [i for i in request if i not in have]
        if missing:
            raise GpusUnavailable(
                f"this worker has no GPU {', '.join(map(str, missing))} "
                f"(its GPUs: {', '.join(map(str, have)) or 'none'})."
            )
    elif request != AUTO and request > len(have):
        raise GpusUnavailable(
            f"the session asks for {request} GPU{'s' if request > 1 else ''}; this worker has {len(have)}. "
            "Lower the number in the Training tab's Runtime settings."
        )
    count = 1 if request == AUTO else (len(request) if isinstance(request, list) else request)
    candidates = request if isinstance(request, list) else have
    directory = lock_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    announced = False
    while True:
        lease = _try_acquire(directory, candidates, count)
        if lease is not None:
            lease.waited_seconds = time.monotonic() - started
            return lease
        if should_stop():
            return None
        if not announced:
            on_wait(busy(data_dir, have))
            announced = True
        time.sleep(poll_seconds)


def _try_acquire(directory: Path, candidates: list[int], count: int) -> Lease | None:
    held: list[tuple[int, int]] = []
    for index in candidates:
        fd = os.open(directory / f"{index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        held.append((index, fd))
        if len(held) == count:
            return Lease([i for i, _ in held], _files=[fd for _, fd in held])
    for _, fd in held:  # not enough free: take none (all or nothing, so two sessions cannot deadlock)
        os.close(fd)
    return None


def busy(data_dir: Path, indices: list[int]) -> list[int]:
    """Which of ``indices`` some session holds right now."""
    directory = lock_dir(data_dir)
    taken = []
    for index in indices:
        path = directory / f"{index}.lock"
        if not path.exists():
            continue
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            taken.append(index)
        finally:
            os.close(fd)
    return taken
