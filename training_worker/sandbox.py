"""Starting the runner: the only process where user code executes, contained as far as the host allows.

Where it can (README "Sandbox"; ../shared/DESIGN.md "Isolation and liveness"), the runner runs

- as an unprivileged uid (``RUNNER_UID``, default 65534 ``nobody``) with no capabilities and
  ``no_new_privs``, owning only its work dir;
- inside bubblewrap with every namespace unshared (user, mount, pid, network, IPC, UTS, cgroup):
  ``/usr``, the Python environment and the ``training_worker`` package read-only, its work dir
  read-write, the dataset image folders its work dir links to read-only, a private ``/tmp``,
  ``/dev/shm``, ``/proc`` and a minimal ``/dev``; nothing else of the host exists for it (no
  ``DATA_DIR``, database, secret key, other sessions, sockets or network, not even loopback's
  services). Nested user namespaces are disabled;
- with a scrubbed environment (no secret key, database or broker credentials);
- in a cgroup of its own with a memory and a process limit (no ``RLIMIT_AS``: CUDA reserves huge
  virtual memory on GPU workers), and with ``RLIMIT_FSIZE`` (largest file) and no core dumps;
- for at most a wall-clock limit and with its output capped; both are enforced by the supervising
  task (training_worker/supervisor.py) through :class:`RunnerProcess`.

As root, the chain is ``bwrap`` (root: mounts any host path, unshares every namespace but the
user one) → ``setpriv`` (drop to the runner uid, clear groups and every capability) → ``bwrap``
again (unprivileged: a user namespace with nested ones disabled) → ``python -m
training_worker.runner``; about 10 ms of start-up. The single unprivileged bwrap of the recipe
cannot bind a work dir under a directory the runner uid may not traverse (a 0700 ``DATA_DIR``),
which the root layer can. A worker that is not root runs one unprivileged bwrap as itself.

Where bwrap or cgroups are missing or unusable the runner still starts, degraded, and
``RunnerProcess.isolation`` says what is not contained (stored on the session, shown on its page);
``RUNNER_SANDBOX=required`` refuses to start instead. In every mode the runner has its own session
and process group and dies with its supervisor (PR_SET_PDEATHSIG, plus EOF on its control pipe).

This module does not import Django at import time: :func:`config_from_settings` reads the settings.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training_worker.events import EVENT_FD_VARIABLE

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(__file__).resolve().parent
PR_SET_PDEATHSIG = 1
MiB = 1024**2
GiB = 1024**3
# Only what Python, TensorFlow and Keras need; nothing from the worker's environment leaks.
PASSED_THROUGH = (
    "LANG",
    "LC_ALL",
    "TZ",
    "KERAS_BACKEND",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "TF_CPP_MIN_LOG_LEVEL",
)
# What the supervisor may set per session (its GPUs, training_worker.gpus.Lease.environment).
PER_SESSION = ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")
PATH = "/usr/local/bin:/usr/bin:/bin"
# Read-only from the host's /etc: the dynamic loader's cache, time zone, alternatives' symlinks.
ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "alternatives",
    "nsswitch.conf",
)
ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")  # /usr-merged: symlinks into /usr
GPU_DEVICES = re.compile(r"^nvidia(\d+|ctl|-uvm|-uvm-tools|-modeset)$")
CGROUP_PREFIX = "dls-runner-"
MODES = ("auto", "required", "off")


class SandboxUnavailable(RuntimeError):
    """RUNNER_SANDBOX=required, and the host cannot contain the runner fully."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 8 * GiB  # the cgroup's limit (RAM + swap); past it the kernel kills the runner
    processes: int = 1024  # processes and threads (TensorFlow starts a few per core)
    file_bytes: int = 32 * GiB  # RLIMIT_FSIZE: the largest file the runner may write
    wall_clock_seconds: float = 24 * 3600.0  # enforced by the supervisor
    output_bytes: int = 20 * MiB  # stdout + stderr kept; enforced by the supervisor
    tmp_bytes: int = 512 * MiB  # the private /tmp and /dev/shm (tmpfs: counted as memory)


@dataclass(frozen=True)
class SandboxConfig:
    mode: str = "auto"  # auto: contain what the host allows | required: refuse degraded | off
    uid: int = 65534
    gid: int = 65534
    python: str = ""  # the runner's interpreter; default: the worker's
    cgroup_parent: str = ""  # a cgroup path ("/dlstudio") for runner cgroups; default: the worker's own
    limits: Limits = field(default_factory=Limits)


def config_from_settings() -> SandboxConfig:
    """The sandbox the Django settings ask for (RUNNER_* variables, webapp/settings.py)."""
    from django.conf import settings

    return SandboxConfig(
        mode=settings.RUNNER_SANDBOX,
        uid=settings.RUNNER_UID,
        gid=settings.RUNNER_GID,
        python=settings.RUNNER_PYTHON,
        cgroup_parent=settings.RUNNER_CGROUP_PARENT,
        limits=Limits(
            memory_bytes=int(settings.RUNNER_MEMORY_MB * MiB),
            processes=int(settings.RUNNER_MAX_PROCESSES),
            file_bytes=int(settings.RUNNER_MAX_FILE_MB * MiB),
            wall_clock_seconds=float(settings.RUNNER_TIME_LIMIT_MINUTES * 60),
            output_bytes=int(settings.RUNNER_MAX_OUTPUT_MB * MiB),
        ),
    )


# ---------------------------------------------------------------------------------------- environment


def per_session_environment(environment: dict[str, str] | None) -> dict[str, str]:
    unknown = set(environment or {}) - set(PER_SESSION)
    if unknown:
        raise ValueError(
            f"a runner's per-session environment holds {PER_SESSION} only, not {sorted(unknown)}"
        )
    return dict(environment or {})


def runner_environment(workdir: Path) -> dict[str, str]:
    env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    env.update(
        PATH=PATH,
        HOME=str(workdir),
        TMPDIR=str(workdir / "tmp"),
        PYTHONPATH=str(REPO_ROOT),
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
        MPLCONFIGDIR=str(workdir / "tmp"),
        KERAS_HOME=str(workdir / "keras"),
        USER="runner",
        LOGNAME="runner",
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("KERAS_BACKEND", "tensorflow")
    return env


# ---------------------------------------------------------------------------------------- cgroups


@dataclass
class Cgroups:
    """One runner's cgroup(s): v1 has one directory per controller, v2 one for both."""

    memory: Path | None = None
    pids: Path | None = None
    version: int = 1

    @property
    def dirs(self) -> list[Path]:
        return list(dict.fromkeys(d for d in (self.memory, self.pids) if d is not None))

    def join_from_child(self) -> None:
        """In the forked child, before exec: move it (and so all it starts) into the cgroup(s)."""
        pid = str(os.getpid()).encode()
        for directory in self.dirs:
            fd = os.open(directory / "cgroup.procs", os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)

    def pids_inside(self) -> set[int]:
        found: set[int] = set()
        for directory in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(line) for line in (directory / "cgroup.procs").read_text().split())
        return found

    def kill(self) -> None:
        """SIGKILL everything still inside (what escaped its process group and session)."""
        for directory in self.dirs:
            if (directory / "cgroup.kill").exists():
                with contextlib.suppress(OSError):
                    (directory / "cgroup.kill").write_text("1")
        for _ in range(50):
            remaining = self.pids_inside()
            if not remaining:
                return
            for pid in remaining:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this runner for going over the memory limit."""
        if self.memory is None:
            return False
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        counters = _read_counters(self.memory / name)
        if counters.get("oom_kill", 0) > 0:
            return True
        # Kernels without the counter: a limit hit that ended in a kill looks like failcnt > 0.
        return (
            self.version == 1 and "oom_kill" not in counters and _read_int(self.memory / "memory.failcnt") > 0
        )

    def process_limit_hit(self) -> bool:
        if self.pids is None:
            return False
        return _read_counters(self.pids / "pids.events").get("max", 0) > 0

    def remove(self) -> None:
        self.kill()
        for directory in self.dirs:
            for _ in range(50):  # the last processes may take a moment to leave
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _read_counters(path: Path) -> dict[str, int]:
    counters: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                counters[parts[0]] = int(parts[1])
    return counters


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


@dataclass(frozen=True)
class CgroupMount:
    version: int
    mount_point: Path
    root: str  # the hierarchy path mounted there ("/" unless a bind of a sub-tree)
    controllers: frozenset[str]


def parse_mountinfo(text: str) -> list[CgroupMount]:
    mounts = []
    for line in text.splitlines():
        head, _, tail = line.partition(" - ")
        fields, tail_fields = head.split(), tail.split()
        if len(fields) < 5 or len(tail_fields) < 3:
            continue
        fstype, options = tail_fields[0], set(tail_fields[2].split(","))
        mount_point = Path(fields[4].replace("\\040", " "))
        if fstype == "cgroup":
            mounts.append(CgroupMount(1, mount_point, fields[3], frozenset(options & {"memory", "pids"})))
        elif fstype == "cgroup2":
            mounts.append(CgroupMount(2, mount_point, fields[3], frozenset()))
    return mounts


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/self/cgroup``: controller → path ("" for the v2 unified hierarchy)."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _under_mount(mount: CgroupMount, path: str) -> Path:
    relative = path
    if mount.root != "/" and (path == mount.root or path.startswith(mount.root + "/")):
        relative = path[len(mount.root) :]
    return mount.mount_point / relative.lstrip("/")


def create_cgroups(
    name: str,
    limits: Limits,
    parent: str = "",
    mountinfo: str | None = None,
    proc_cgroup: str | None = None,
) -> tuple[Cgroups, dict[str, str]]:
    """The runner's cgroup(s), limits set; and {"cgroup memory" / "cgroup pids": why} for what is not."""
    missing: dict[str, str] = {}
    try:
        mountinfo = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
        proc_cgroup = proc_cgroup if proc_cgroup is not None else Path("/proc/self/cgroup").read_text()
    except OSError as exc:
        return Cgroups(), {"cgroup memory": f"cannot read /proc ({exc})", "cgroup pids": "same"}
    mounts = parse_mountinfo(mountinfo)
    own = parse_proc_cgroup(proc_cgroup)
    cgroups = Cgroups()
    v1 = {c: m for m in mounts if m.version == 1 for c in m.controllers}
    if v1:
        for controller in ("memory", "pids"):
            mount = v1.get(controller)
            if mount is None:
                missing[f"cgroup {controller}"] = "no cgroup v1 hierarchy with that controller"
                continue
            base = _under_mount(mount, parent or own.get(controller, "/"))
            _sweep(base)
            try:
                directory = base / name
                directory.mkdir()
                if controller == "memory":
                    _write(directory / "memory.limit_in_bytes", limits.memory_bytes)
                    if (directory / "memory.memsw.limit_in_bytes").exists():  # no swapping past it
                        _write(directory / "memory.memsw.limit_in_bytes", limits.memory_bytes)
                else:
                    _write(directory / "pids.max", limits.processes)
                setattr(cgroups, controller, directory)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    (base / name).rmdir()
                missing[f"cgroup {controller}"] = (
                    f"cannot create a cgroup under {base} ({exc.strerror or exc})"
                )
        return cgroups, missing
    unified = next((m for m in mounts if m.version == 2), None)
    if unified is None:
        why = "no cgroup file system mounted"
        return cgroups, {"cgroup memory": why, "cgroup pids": why}
    base = _under_mount(unified, parent or own.get("", "/"))
    _sweep(base)
    cgroups.version = 2
    try:
        available = set((base / "cgroup.controllers").read_text().split())
        wanted = {"memory", "pids"} & available
        enabled = set((base / "cgroup.subtree_control").read_text().split())
        if wanted - enabled:
            # Refused (EBUSY) where the worker itself lives in `base` ("no internal processes"):
            # then RUNNER_CGROUP_PARENT must name a delegated cgroup with no process of its own.
            (base / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in sorted(wanted - enabled)))
        directory = base / name
        directory.mkdir()
    except OSError as exc:
        why = f"cannot create a cgroup v2 under {base} ({exc.strerror or exc}); set RUNNER_CGROUP_PARENT"
        return cgroups, {"cgroup memory": why, "cgroup pids": why}
    for controller in ("memory", "pids"):
        if controller not in available:
            missing[f"cgroup {controller}"] = f"the {controller} controller is not available in {base}"
            continue
        try:
            if controller == "memory":
                _write(directory / "memory.max", limits.memory_bytes)
                if (directory / "memory.swap.max").exists():
                    _write(directory / "memory.swap.max", 0)
            else:
                _write(directory / "pids.max", limits.processes)
            setattr(cgroups, controller, directory)
        except OSError as exc:
            missing[f"cgroup {controller}"] = f"cannot set its limit in {directory} ({exc.strerror or exc})"
    if not cgroups.dirs:
        with contextlib.suppress(OSError):
            directory.rmdir()
    return cgroups, missing


STALE_CGROUP_SECONDS = 60


def _sweep(base: Path) -> None:
    """Remove runner cgroups left empty by a worker that was killed before its cleanup.

    Only old ones: a cgroup just created by another worker is empty until its runner joins it.
    """
    with contextlib.suppress(OSError):
        for directory in base.glob(f"{CGROUP_PREFIX}*"):
            with contextlib.suppress(OSError):
                if time.time() - directory.stat().st_mtime < STALE_CGROUP_SECONDS:
                    continue
                if not (directory / "cgroup.procs").read_text().split():
                    directory.rmdir()


def _write(path: Path, value: int) -> None:
    path.write_text(str(value))


# ---------------------------------------------------------------------------------------- bubblewrap


@dataclass(frozen=True)
class Layout:
    """How bwrap is used on this host; found once per worker process by :func:`probe`."""

    kind: str  # "root" (bwrap → setpriv → bwrap), "root-no-userns" (bwrap → setpriv), "user", "none"
    why_not: str = ""  # for "none": what went wrong
    notes: tuple[str, ...] = ()  # what this layout does not do (kept in the session's isolation notes)
    disable_userns: bool = True  # "user": whether bwrap's --disable-userns works here


def _which(name: str) -> str | None:
    return shutil.which(name, path=PATH)


OUTER_UNSHARE = (
    "--unshare-ipc",
    "--unshare-pid",
    "--unshare-net",
    "--unshare-uts",
    "--unshare-cgroup-try",
)
NO_NESTED_USERNS = "nested user namespaces are not disabled (no user namespace for the runner)"
# What the root layer keeps for setpriv to drop to the runner uid; setpriv then clears them all.
SETPRIV_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")


def _drop_to(uid: int, gid: int) -> list[str]:
    return [
        "/usr/bin/setpriv" if Path("/usr/bin/setpriv").exists() else str(_which("setpriv")),
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--no-new-privs",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]


def _inner_bwrap(bwrap: str, chdir: str) -> list[str]:
    """The unprivileged layer: a user namespace (nested ones disabled) over the root layer's mounts."""
    return [
        bwrap,
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--dev-bind",  # --bind would make the root layer's /dev/null unusable (nodev)
        "/",
        "/",
        "--chdir",
        chdir,
        "--",
    ]


def _minimal_mounts(bwrap: str) -> list[str]:
    args = [bwrap, "--ro-bind", "/usr", "/usr"]
    for name in ROOT_LINKS:
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args + ["--proc", "/proc", "--dev", "/dev"]


@functools.cache
def probe(uid: int, gid: int) -> Layout:
    """Which bwrap layout works here: tried once with /usr/bin/true, the best that works wins."""
    bwrap = _which("bwrap")
    if bwrap is None:
        return Layout("none", "bwrap is not installed (Debian: apt-get install bubblewrap)")
    true = "/usr/bin/true" if Path("/usr/bin/true").exists() else "/bin/true"
    base = [*_minimal_mounts(bwrap), "--tmpfs", "/tmp"]  # the inner bwrap sets up under /tmp
    candidates: list[tuple[str, list[str], tuple[str, ...]]] = []
    if os.geteuid() == 0:
        if _which("setpriv") is None:
            return Layout("none", "setpriv (util-linux) is not installed: cannot drop to the runner uid")
        outer = [*base, *OUTER_UNSHARE, "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        for cap in SETPRIV_CAPS:
            outer += ["--cap-add", cap]
        candidates.append(("root", [*outer, "--", *_drop_to(uid, gid), *_inner_bwrap(bwrap, "/"), true], ()))
        candidates.append(
            (
                "root-no-userns",
                [*outer, "--", *_drop_to(uid, gid), true],
                (NO_NESTED_USERNS,),
            )
        )
    else:
        user = [*base, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"]
        candidates.append(("user", [*user, "--disable-userns", "--", true], ()))
        candidates.append(("user", [*user, "--", true], (NO_NESTED_USERNS,)))
    error = ""
    for kind, command, notes in candidates:
        try:
            result = subprocess.run(
                command, capture_output=True, timeout=20, env={"PATH": PATH}, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            error = error or str(exc)
            continue
        if result.returncode == 0:
            return Layout(kind, notes=notes, disable_userns=NO_NESTED_USERNS not in notes)
        lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
        error = error or (lines[-1] if lines else f"exit status {result.returncode}")
    return Layout("none", f"bwrap does not work here ({error})")


def python_prefixes(python: str) -> list[Path]:
    """Directories the interpreter needs (its virtual environment and base installation)."""
    if Path(python).absolute() == Path(sys.executable).absolute():
        prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    else:
        prefixes = set(_other_prefixes(python))
    found = []
    for prefix in sorted(prefixes):
        path = Path(prefix)
        if not path.is_absolute() or path == Path("/") or _inside(path, Path("/usr")):
            continue
        found.append(path)
    return found


@functools.cache
def _other_prefixes(python: str) -> tuple[str, ...]:
    code = "import sys; print(sys.prefix); print(sys.base_prefix); print(sys.exec_prefix)"
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return (str(Path(python).resolve().parent.parent),)
    return tuple(line for line in out.stdout.splitlines() if line)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _external_links(workdir: Path) -> list[Path]:
    """Where the work dir's symbolic links lead outside it (dataset image folders, earlier models)."""
    targets = []
    root = workdir.resolve()
    for dirpath, dirnames, filenames in os.walk(workdir):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                target = path.resolve()
                if target.exists() and not _inside(target, root):
                    targets.append(target)
    return sorted(set(targets))


def _etc_data(uid: int, gid: int, workdir: Path) -> dict[str, bytes]:
    """The sandbox's own /etc/passwd, group and hosts (the host's are not shown)."""
    users = {0: "root", 65534: "nobody", uid: "runner"}
    groups = {0: "root", 65534: "nogroup", gid: "runner"}
    passwd = "".join(
        f"{name}:x:{number}:{gid if number == uid else number}:{name}:"
        f"{workdir if number == uid else '/nonexistent'}:/usr/sbin/nologin\n"
        for number, name in users.items()
    )
    group = "".join(f"{name}:x:{number}:\n" for number, name in groups.items())
    hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    return {"/etc/passwd": passwd.encode(), "/etc/group": group.encode(), "/etc/hosts": hosts.encode()}


def _gpu_devices() -> list[str]:
    try:
        names = os.listdir("/dev")
    except OSError:
        return []
    devices = [f"/dev/{name}" for name in sorted(names) if GPU_DEVICES.match(name)]
    if devices and Path("/dev/nvidia-caps").is_dir():
        devices.append("/dev/nvidia-caps")
    return devices


def bwrap_command(
    layout: Layout,
    workdir: Path,
    python: str,
    env: dict[str, str],
    config: SandboxConfig,
    data_fds: dict[str, int],
    warm: bool = False,
) -> list[str]:
    """The whole command line: bwrap layer(s) and the runner."""
    bwrap = _which("bwrap") or "bwrap"
    limits = config.limits
    args = _minimal_mounts(bwrap)
    ro = [*python_prefixes(python), PACKAGE_DIR, *_external_links(workdir)]
    binds = sorted({p for p in ro if not _inside(p, Path("/usr"))} | {workdir}, key=lambda p: len(p.parts))
    # Parents of the mount points, traversable (a 0700 DATA_DIR would otherwise be copied as 0700).
    made: set[Path] = {Path("/"), Path("/tmp"), Path("/usr"), Path("/proc"), Path("/dev")}
    parents: list[Path] = []
    for path in binds:
        for parent in reversed(path.parents):
            if parent in made or any(_inside(parent, b) for b in binds):
                continue
            made.add(parent)
            parents.append(parent)
    for tmpfs in ("/tmp", "/dev/shm"):  # private, world-writable with the sticky bit, capped
        args += ["--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", tmpfs]
    for name in ETC_FILES:
        path = Path("/etc") / name
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    for dest, fd in data_fds.items():
        args += ["--perms", "0444", "--ro-bind-data", str(fd), dest]
    for device in _gpu_devices():
        args += ["--dev-bind", device, device]
    for parent in parents:
        args += ["--perms", "0755", "--dir", str(parent)]
    for path in binds:
        args += ["--bind" if path == workdir else "--ro-bind", str(path), str(path)]
    args += ["--hostname", "runner", "--clearenv"]
    for name, value in sorted(env.items()):
        args += ["--setenv", name, value]
    args += ["--die-with-parent", "--new-session", "--chdir", str(workdir)]
    runner = [python, "-m", "training_worker.runner", str(workdir), *(["--warm"] if warm else [])]
    if layout.kind == "user":
        disable = ["--disable-userns"] if layout.disable_userns else []
        return [*args, "--unshare-all", "--unshare-user", *disable, "--", *runner]
    args += [*OUTER_UNSHARE, "--cap-drop", "ALL"]
    for cap in SETPRIV_CAPS:
        args += ["--cap-add", cap]
    command = [*args, "--", *_drop_to(config.uid, config.gid)]
    if layout.kind == "root":
        command += _inner_bwrap(bwrap, str(workdir))
    return command + runner


# ---------------------------------------------------------------------------------------- the runner


@dataclass
class RunnerProcess:
    """A started runner and what contains it; the supervisor kills, times and cleans up through it."""

    process: subprocess.Popen
    events_fd: int
    workdir: Path
    limits: Limits
    isolation: dict[str, Any]
    cgroups: Cgroups = field(default_factory=Cgroups)
    started: float = field(default_factory=time.monotonic)
    owner: tuple[int, int] | None = None  # whose the work dir becomes again after the run
    limit_hits: tuple[bool, bool] | None = None  # (memory, processes), read before the cgroups go

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """The runner and everything it started: its process group, then whatever is in its cgroup."""
        kill_group(self.process)
        self.cgroups.kill()

    def over_time(self) -> bool:
        return time.monotonic() - self.started > self.limits.wall_clock_seconds

    def oom_killed(self) -> bool:
        """Whether the kernel killed one of its processes at the memory limit (kept past cleanup)."""
        if self.limit_hits is None:
            return self.cgroups.oom_killed()
        return self.limit_hits[0]

    def process_limit_hit(self) -> bool:
        """Whether it tried to start more processes or threads than its limit allows."""
        if self.limit_hits is None:
            return self.cgroups.process_limit_hit()
        return self.limit_hits[1]

    def exit_signal(self) -> int | None:
        """The signal that ended the runner (bwrap reports a killed child as 128 + signal)."""
        code = self.process.returncode
        if code is None:
            return None
        if code < 0:
            return -code
        if self.isolation.get("sandboxed") and code > 128:
            return code - 128
        return None

    def cleanup(self) -> None:
        """After the runner exited: nothing of it survives, its cgroups go, its files become the worker's."""
        kill_group(self.process)
        self.cgroups.kill()
        if self.limit_hits is None:  # cleanup may run twice; the counters go with the first
            self.limit_hits = (self.cgroups.oom_killed(), self.cgroups.process_limit_hit())
        self.cgroups.remove()
        if self.owner is not None:
            _chown_tree(self.workdir, *self.owner)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """Files the runner wrote become the worker's: a later session that links them cannot change them."""
    with contextlib.suppress(OSError):
        os.lchown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            with contextlib.suppress(OSError):
                os.lchown(os.path.join(dirpath, name), uid, gid)


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _child_setup(limits: Limits, cgroups: Cgroups, nproc: int | None) -> None:
    """Runs in the forked child before exec: the rlimits, the cgroup, death with the supervisor."""
    _die_with_parent()
    os.umask(0o022)  # what it writes stays readable by the worker and by later runners
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    if nproc is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    cgroups.join_from_child()


def _prepare_workdir(workdir: Path, uid: int, gid: int) -> None:
    """The work dir and its output/ and tmp/ become the runner uid's; its inputs stay readable only.

    Inputs (datasets and earlier models, hard-linked from storage) stay the worker's: the runner
    reads them, never writes them; they are made readable by others where they are not.
    """
    (workdir / "tmp").mkdir(exist_ok=True)
    (workdir / "output").mkdir(exist_ok=True)
    for dirpath, dirnames, filenames in os.walk(workdir):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            wanted = 0o055 if stat.S_ISDIR(mode) else 0o044 if stat.S_ISREG(mode) else 0
            if mode & wanted != wanted:
                os.chmod(path, stat.S_IMODE(mode) | wanted)
    for path in (workdir, workdir / "output", workdir / "tmp"):
        os.chown(path, uid, gid)


def spawn_runner(
    workdir: Path,
    config: SandboxConfig | None = None,
    warm: bool = False,
    environment: dict[str, str] | None = None,
) -> RunnerProcess:
    """Start the runner on ``workdir`` as contained as this host allows (see the module docstring).
    ``warm``: it imports TensorFlow, then waits for ``start`` on stdin (training_worker.warm).
    ``environment``: per-session variables (``PER_SESSION`` only: the GPUs it may see)."""
    config = config or SandboxConfig()
    if config.mode not in MODES:
        raise ValueError(f"RUNNER_SANDBOX={config.mode!r}; use one of {', '.join(MODES)}")
    workdir = workdir.resolve()
    (workdir / "tmp").mkdir(exist_ok=True)
    python = config.python or sys.executable
    limits = config.limits
    env = {**runner_environment(workdir), **per_session_environment(environment)}
    missing: dict[str, str] = {}

    layout = (
        probe(config.uid, config.gid)
        if config.mode != "off"
        else Layout("none", "turned off (RUNNER_SANDBOX=off)")
    )
    if layout.kind == "none":
        missing["bwrap"] = layout.why_not
    root = os.geteuid() == 0
    drops_uid = layout.kind in ("root", "root-no-userns")
    if root and not drops_uid:
        missing["unprivileged uid"] = "runs as root: the uid drop needs bwrap"
    cgroups, cgroup_missing = (
        create_cgroups(f"{CGROUP_PREFIX}{workdir.name}-{uuid.uuid4().hex[:8]}", limits, config.cgroup_parent)
        if config.mode != "off"
        else (Cgroups(), {"cgroup memory": "turned off", "cgroup pids": "turned off"})
    )
    missing.update(cgroup_missing)
    if config.mode == "required" and missing:
        cgroups.remove()
        raise SandboxUnavailable(
            "the sandbox is required (RUNNER_SANDBOX=required) but "
            + "; ".join(f"{what}: {why}" for what, why in missing.items())
        )
    # The process limit without a pids cgroup: RLIMIT_NPROC, per uid (so shared by runners).
    nproc = limits.processes if cgroups.pids is None and drops_uid else None
    isolation: dict[str, Any] = {
        "sandboxed": layout.kind != "none",
        "missing": list(missing),
        "notes": [f"{what}: {why}" for what, why in missing.items()] + list(layout.notes),
        "uid": config.uid if drops_uid else os.geteuid(),
        "layout": layout.kind,
        "limits": {
            **asdict(limits),
            "memory": cgroups.memory is not None,
            "processes_by": "cgroup" if cgroups.pids is not None else ("rlimit" if nproc else None),
        },
    }

    owner = None
    if drops_uid:
        _prepare_workdir(workdir, config.uid, config.gid)
        owner = (os.geteuid(), os.getegid())
    read_end, write_end = os.pipe()
    data_pipes: dict[str, int] = {}
    keep: list[int] = [write_end]
    try:
        if layout.kind != "none":
            ids = (config.uid, config.gid) if drops_uid else (os.geteuid(), os.getegid())
            for dest, content in _etc_data(*ids, workdir).items():
                data_read, data_write = os.pipe()
                os.write(data_write, content)  # a few hundred bytes: fits the pipe's buffer
                os.close(data_write)
                data_pipes[dest] = data_read
                keep.append(data_read)
            command = bwrap_command(
                layout, workdir, python, {**env, EVENT_FD_VARIABLE: str(write_end)}, config, data_pipes, warm
            )
            popen_env = {"PATH": PATH}
        else:
            command = [python, "-m", "training_worker.runner", str(workdir), *(["--warm"] if warm else [])]
            popen_env = {**env, EVENT_FD_VARIABLE: str(write_end)}
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=popen_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=tuple(keep),
            preexec_fn=functools.partial(_child_setup, limits, cgroups, nproc),
            start_new_session=True,  # its own process group: abort kills the group
            close_fds=True,
        )
    except BaseException:
        os.close(read_end)
        cgroups.remove()
        raise
    finally:
        for fd in keep:
            os.close(fd)
    return RunnerProcess(
        process=process,
        events_fd=read_end,
        workdir=workdir,
        limits=limits,
        isolation=isolation,
        cgroups=cgroups,
        owner=owner,
    )


def kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
