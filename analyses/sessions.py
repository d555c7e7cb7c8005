"""Starting and stopping training sessions; every state change is a conditional update of the row."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from analyses import live
from analyses.models import EpochMetric, MLTask, Session
from analyses.revisions import current_revision
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
            revision=current_revision(mltask),  # the revision whose design it froze
            created_by=user,
            # Advanced mode: the Training tab's code decides; the runner's progress events say.
            epochs_total=0
            if mltask.training.get("mode") == "advanced"
            else int(mltask.training.get("epochs", 0)),
        )
        transaction.on_commit(lambda: dispatch.dispatch_session(session.pk))
    return session


def resume_session(source: Session, user, epochs: int | None = None) -> Session:
    """A new session continuing ``source`` (standard mode) from its last complete epoch, to
    ``epochs`` in all (default: the source's planned epochs). Its history starts with the
    source's complete epochs; the runner goes on from the source's last model (``output/last.keras``
    when the kept epoch was an earlier one) with its optimizer state."""
    design = source.design
    if design.get("training", {}).get("mode", "standard") != "standard":
        raise SessionStateError(
            "Only standard-mode sessions can be continued: in advanced mode your fit_model decides the "
            "epochs. Train again instead."
        )
    if source.status not in (Status.INTERRUPTED, Status.SUCCEEDED) or not (source.artifacts or {}).get(
        "model"
    ):
        raise SessionStateError(
            f"Session {source.pk} is {source.status}: only an interrupted or finished session with a saved "
            "model can be continued."
        )
    done = list(source.epoch_metrics.filter(partial=False).order_by("epoch"))
    epochs_done = done[-1].epoch if done else 0
    total = int(epochs if epochs is not None else design["training"].get("epochs", 0))
    if total <= epochs_done:
        raise SessionStateError(
            f"Session {source.pk} already trained {epochs_done} epoch(s); ask for more epochs than that "
            "to continue it."
        )
    training = {**design["training"], "epochs": total}
    resumed = design | {"training": training, "resume": {"session_id": source.pk, "epochs_done": epochs_done}}
    with transaction.atomic():
        session = Session.objects.create(
            mltask=source.mltask,
            design=resumed,
            revision_id=source.revision_id,  # it goes on with the source's design
            created_by=user,
            epochs_total=total,
            epochs_done=epochs_done,
        )
        EpochMetric.objects.bulk_create(
            EpochMetric(session=session, epoch=row.epoch, seconds=row.seconds, values=row.values)
            for row in done
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
