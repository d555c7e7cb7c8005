"""Starting and stopping training sessions; every state change is a conditional update of the row."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from analyses import live
from analyses.models import MLTask, Session
from training_worker import dispatch
from training_worker.events import Status


class SessionStateError(Exception):
    """The request does not fit the session's current status; the message says why."""


def start_session(mltask: MLTask, user) -> Session:
    """Freeze the design into a queued session and dispatch it once the row is committed."""
    design = mltask.design() | {"version": mltask.version, "project_variables": mltask.project.variables}
    with transaction.atomic():
        session = Session.objects.create(
            mltask=mltask,
            design=design,
            created_by=user,
            epochs_total=int(mltask.training.get("epochs", 0)),
        )
        transaction.on_commit(lambda: dispatch.dispatch_session(session.pk))
    return session


def finish_unstarted(session: Session, message: str) -> bool:
    """queued → aborted, for a session no worker has taken yet."""
    now = timezone.now()
    changed = Session.objects.filter(pk=session.pk, status=Status.QUEUED).update(
        status=Status.ABORTED, ended_at=now, error={"phase": "queued", "message": message}
    )
    if changed:
        live.publish(
            session.pk,
            {
                "type": "done",
                "status": Status.ABORTED,
                "final_metrics": {},
                "error": {"phase": "queued", "message": message},
            },
        )
    return bool(changed)


def request_interrupt(session: Session) -> Session:
    """Stop at the end of the current batch and keep an evaluated model."""
    return _request_stop(
        session,
        "interrupt_requested_at",
        "stopping",
        "Interrupted before training started: no model was trained.",
    )


def request_abort(session: Session) -> Session:
    """Kill the runner; no model is kept."""
    return _request_stop(session, "abort_requested_at", "aborting", "Aborted before training started.")


def _request_stop(session: Session, request_field: str, phase: str, unstarted_message: str) -> Session:
    """Record the request on the row; the supervisor polls it and acts (the row is the truth)."""
    if session.is_final:
        raise SessionStateError(f"Session {session.pk} already ended ({session.status}).")
    if not finish_unstarted(session, unstarted_message):
        Session.objects.filter(pk=session.pk, **{f"{request_field}__isnull": True}).update(
            **{request_field: timezone.now()}
        )
        live.publish(session.pk, {"type": "status", "status": session.status, "phase": phase})
    session.refresh_from_db()
    return session
