"""Deleting a finished session: its database rows (epochs and logs go with it) and its files.

A session's files are its work dir ``DATA_DIR/sessions/<id>`` (job spec, linked dataset, output:
model, preprocessing, predictions, TensorBoard logs). When a warm runner took the session, that
path is a symlink to the spare's own dir ``DATA_DIR/sessions/warm-<random>`` (training_worker.warm),
so both go. Nothing outside ``DATA_DIR/sessions`` is ever followed or removed: links inside the
work dir (an image dataset's folder) are unlinked, not followed, and the dataset file is a hard link.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import ProtectedError

from analyses.models import Session
from analyses.sessions import SessionStateError
from training_worker.events import FINAL_STATUSES, Status

log = logging.getLogger(__name__)


def delete_session(session: Session) -> None:
    """Delete ``session`` and its files; SessionStateError (with the reason) while it may still run."""
    _refuse_while_needed(session)
    try:
        with transaction.atomic():
            # Conditional on the status, in one statement: a final status never changes again, so a
            # session the supervisor is still working on can never be deleted under it.
            deleted, _ = Session.objects.filter(pk=session.pk, status__in=FINAL_STATUSES).delete()
    except ProtectedError as exc:
        raise SessionStateError(
            f"Session {session.pk} cannot be deleted while other records use it ({exc.args[0]})."
        ) from None
    if not deleted:
        status = Session.objects.filter(pk=session.pk).values_list("status", flat=True).first()
        if status is not None:
            raise SessionStateError(
                f"Session {session.pk} is {status}: interrupt or abort it first, then delete it once it "
                "has stopped."
            )
    remove_session_files(session.pk)


# Statuses of work that may still read the session's files (sessions and jobs such as scoring).
UNFINISHED = (Status.QUEUED, Status.STARTING, Status.RUNNING)


def _refuse_while_needed(session: Session) -> None:
    """A session continuing this one links its models when it starts (training_worker.workdirs),
    and a job applying its model (scoring) reads them: until they are done the files must stay."""
    for relation in Session._meta.related_objects:
        model = relation.related_model
        if not any(field.name == "status" for field in model._meta.get_fields()):
            continue  # epochs, logs: rows that go with the session
        busy = model._default_manager.filter(**{relation.field.name: session, "status__in": UNFINISHED})
        if busy.exists():
            kind = model._meta.verbose_name
            raise SessionStateError(
                f"Session {session.pk} cannot be deleted while a {kind} using its model is unfinished; "
                "delete it once that is done."
            )
    waiting = list(
        Session.objects.filter(
            design__resume__session_id=session.pk, status__in=(Status.QUEUED, Status.STARTING)
        ).values_list("pk", flat=True)
    )
    if waiting:
        names = ", ".join(str(pk) for pk in waiting)
        raise SessionStateError(
            f"Session {session.pk} cannot be deleted yet: session {names} continues from its model and has "
            "not started. Delete it once that session runs, or abort that session first."
        )


def remove_session_files(session_id: int) -> list[str]:
    """Remove the work dir of session ``session_id`` (and a warm dir its link points to); returns
    what could not be removed (also logged), [] when all went or there was nothing."""
    sessions_root = Path(settings.DATA_DIR) / "sessions"
    workdir = sessions_root / str(session_id)
    problems: list[str] = []
    if workdir.is_symlink():
        target = _link_target(workdir, sessions_root)
        workdir.unlink()
        if target is not None:
            problems += _remove_tree(target)
    elif workdir.is_dir():
        problems += _remove_tree(workdir)
    for problem in problems:
        log.warning("session %s: %s", session_id, problem)
    return problems


def _link_target(link: Path, sessions_root: Path) -> Path | None:
    """The dir ``link`` names when it is a session dir of ours (``sessions/<name>``, not a number:
    another session's); None for anything else, which is then left alone."""
    root = sessions_root.resolve()
    target = Path(os.path.normpath(link.parent / os.readlink(link)))
    if target.is_symlink() or not target.is_dir():
        return None
    if target.resolve().parent != root or target.name.isdigit():
        return None
    return target


def _remove_tree(path: Path) -> list[str]:
    problems: list[str] = []

    # rmtree never follows links inside the tree: it unlinks them (an image dataset's folder stays).
    def failed(function, name, excinfo) -> None:
        problems.append(f"could not remove {name}: {excinfo[1]}")

    shutil.rmtree(path, onerror=failed)
    return problems
