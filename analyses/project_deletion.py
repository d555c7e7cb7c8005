"""Deleting a whole project (owners): its rows, its datasets' files and its sessions' work dirs.

The rows go first, in one transaction; the files after it committed, so a failed deletion never
leaves rows pointing at removed files. Session work dirs go the way a single session's do
(analyses.deletion.remove_session_files); a dataset file or image folder is removed only when no
remaining dataset names it too, and never outside ``MEDIA_ROOT/datasets``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction

from analyses.deletion import UNFINISHED, remove_session_files
from analyses.models import Analysis, Dataset, Project, ScoringJob, Session

log = logging.getLogger(__name__)


class ProjectBusyError(Exception):
    """Something of the project is still running; the message says what."""


def delete_project(project: Project) -> list[str]:
    """Delete ``project`` with everything in it; returns what could not be removed from disk."""
    _refuse_while_running(project)
    session_ids = list(Session.objects.filter(mltask__analysis__project=project).values_list("pk", flat=True))
    files = list(project.datasets.values_list("file", "images_dir"))
    with transaction.atomic():
        # An analysis PROTECTs its dataset, even from the project's own cascade: analyses first.
        Analysis.objects.filter(project=project).delete()
        project.delete()
    problems: list[str] = []
    for session_id in session_ids:
        problems += remove_session_files(session_id)
    for name, images_dir in files:
        problems += _remove_dataset_files(name, images_dir)
    for problem in problems:
        log.warning("project %s: %s", project.pk, problem)
    return problems


def _refuse_while_running(project: Project) -> None:
    running = Session.objects.filter(mltask__analysis__project=project, status__in=UNFINISHED)
    scoring = ScoringJob.objects.filter(
        session__mltask__analysis__project=project,
        status__in=(ScoringJob.Status.QUEUED, ScoringJob.Status.RUNNING),
    )
    if running.exists() or scoring.exists():
        raise ProjectBusyError(
            f"Project {project.name!r} still has sessions or scoring jobs queued or running: "
            "abort them (or let them finish) before deleting it."
        )


def _remove_dataset_files(name: str, images_dir: str) -> list[str]:
    problems: list[str] = []
    if name and not Dataset.objects.filter(file=name).exists():
        try:
            default_storage.delete(name)
        except OSError as exc:
            problems.append(f"could not remove {name}: {exc}")
    if images_dir and not Dataset.objects.filter(images_dir=images_dir).exists():
        root = (Path(settings.MEDIA_ROOT) / "datasets").resolve()
        folder = Path(settings.MEDIA_ROOT) / images_dir
        if folder.is_symlink() or not folder.resolve().is_relative_to(root):
            problems.append(f"left {images_dir} alone: it is not a dataset folder of ours")
        elif folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            if folder.exists():
                problems.append(f"could not remove all of {images_dir}")
    return problems
