"""A session's TensorBoard event files as one zip (``GET /api/sessions/{id}/tensorboard/``).

The runner writes them under ``output/tensorboard`` of the session's work dir (runs ``train/`` and
``test/``) and reports that folder as the ``tensorboard`` artifact. The runner is untrusted, so the
folder is read without following links and only regular files inside the session's own work dir
are packed. Unzipped, ``tensorboard --logdir session-<id>`` opens them.
"""

from __future__ import annotations

import os
import stat
import tempfile
import zipfile
from pathlib import Path
from typing import IO

from django.conf import settings

from analyses.models import Session

MAX_FILES = 10_000
MAX_BYTES = 1024**3  # far beyond scalar logs; a bound on what one download may make the web read
CHUNK = 1024**2


class NoLogs(Exception):
    """Nothing to download; the message says why."""


def tensorboard_folder(session: Session) -> Path:
    """The session's event file folder, checked; NoLogs when it has none."""
    relative = (session.artifacts or {}).get("tensorboard")
    if not relative:
        raise NoLogs(
            "This session has no TensorBoard logs: they are written while it trains and kept when "
            "it ends (a failed or aborted session keeps none)."
        )
    data_dir = Path(settings.DATA_DIR)
    workdir = (data_dir / "sessions" / str(session.pk)).resolve()
    folder = data_dir / relative
    if folder.is_symlink() or not folder.is_dir() or not folder.resolve().is_relative_to(workdir):
        raise NoLogs("This session's TensorBoard logs are no longer stored.")
    return folder


def event_files(folder: Path) -> list[tuple[Path, str]]:
    """(path, relative name) of every regular file under ``folder``; links are never followed."""
    files: list[tuple[Path, str]] = []
    total = 0
    for directory, _subdirectories, names in os.walk(folder, followlinks=False):
        for name in sorted(names):
            path = Path(directory) / name
            info = os.lstat(path)
            if not stat.S_ISREG(info.st_mode):
                continue
            total += info.st_size
            files.append((path, path.relative_to(folder).as_posix()))
            if len(files) > MAX_FILES or total > MAX_BYTES:
                raise NoLogs(
                    f"This session's TensorBoard logs are too large to download here (more than "
                    f"{MAX_FILES:,} files or {MAX_BYTES // 1024**2:,} MiB)."
                )
    return sorted(files, key=lambda item: item[1])


def zip_logs(session: Session) -> IO[bytes]:
    """A temporary file holding the zip, positioned at its start: ``session-<id>/train/...``."""
    files = event_files(tensorboard_folder(session))
    if not files:
        raise NoLogs("This session wrote no TensorBoard event files (no epoch ended).")
    archive = tempfile.TemporaryFile()  # noqa: SIM115 -- handed to the response, which closes it
    try:
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for path, name in files:
                # O_NOFOLLOW: a file swapped for a link since the walk is refused, not followed.
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
                member = f"session-{session.pk}/{name}"
                with os.fdopen(fd, "rb") as source, bundle.open(member, "w") as target:
                    while chunk := source.read(CHUNK):
                        target.write(chunk)
        archive.seek(0)
    except OSError as exc:  # unreadable, or swapped for a link since the walk
        archive.close()
        raise NoLogs(f"This session's TensorBoard logs could not be read ({exc.strerror}).") from exc
    except BaseException:
        archive.close()
        raise
    return archive
