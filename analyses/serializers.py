"""The JSON shapes of ../shared/API.md, shared by the API, the websocket snapshot and the pages."""

from __future__ import annotations

from typing import Any

from analyses.models import Analysis, Dataset, MLTask, Project, Session
from analyses.queueing import queue_info


def iso(value) -> str | None:
    return value.isoformat() if value else None


def project_json(project: Project, role: str | None) -> dict[str, Any]:
    return {"id": project.pk, "name": project.name, "role": role, "created_at": iso(project.created_at)}


def dataset_json(dataset: Dataset) -> dict[str, Any]:
    return {
        "id": dataset.pk,
        "project": dataset.project_id,
        "name": dataset.name,
        "rows": dataset.rows,
        "columns": dataset.columns,
        "size_bytes": dataset.size_bytes,
        "filename": dataset.original_filename,
        # How the upload was read (format, encoding, delimiter, …); {} for older datasets.
        "source": dataset.source,
        "created_at": iso(dataset.created_at),
    }


def analysis_json(analysis: Analysis) -> dict[str, Any]:
    return {
        "id": analysis.pk,
        "project": analysis.project_id,
        "name": analysis.name,
        "dataset": analysis.dataset_id,
        "mltasks": [
            {"id": t.pk, "target": t.target, "prediction_type": t.prediction_type}
            for t in analysis.mltasks.order_by("id")
        ],
        "created_at": iso(analysis.created_at),
    }


def mltask_json(mltask: MLTask) -> dict[str, Any]:
    design = mltask.design()
    return {
        "id": mltask.pk,
        "analysis": mltask.analysis_id,
        "project": mltask.analysis.project_id,
        "dataset": mltask.analysis.dataset_id,
        "version": mltask.version,
        "updated_by": mltask.updated_by.username if mltask.updated_by else None,
        "updated_at": iso(mltask.updated_at),
        # The last dry run; it speaks of the current design only when its version is "version".
        "validation": mltask.validation,
        "design": design,
        **design,
    }


def epoch_json(row) -> dict[str, Any]:
    return {"epoch": row.epoch, "seconds": row.seconds, "values": row.values, "partial": row.partial}


def session_summary(session: Session) -> dict[str, Any]:
    return {
        "id": session.pk,
        "mltask": session.mltask_id,
        "status": session.status,
        "phase": session.phase,
        "epochs_total": session.epochs_total,
        "epochs_done": session.epochs_done,
        "final_metrics": session.final_metrics,
        "error": session.error,
        "created_by": session.created_by.username if session.created_by else None,
        "queued_at": iso(session.queued_at),
        "started_at": iso(session.started_at),
        "ended_at": iso(session.ended_at),
        "worker": session.worker,
        # The number of the ML task revision it ran (None for sessions older than history).
        "revision": session.revision.number if session.revision_id else None,
    }


def session_detail(session: Session) -> dict[str, Any]:
    return {
        **session_summary(session),
        "metrics": [epoch_json(row) for row in session.epoch_metrics.all()],
        "progress": session.progress,
        "model": session.model_info,
        "interrupt_requested": session.interrupt_requested_at is not None,
        "abort_requested": session.abort_requested_at is not None,
        "artifacts": sorted(session.artifacts),
        # How the runner was contained; `missing` lists what was not (the page warns): {} until it starts.
        "isolation": session.isolation or {},
        # The GPUs its runner was given ({"gpus": []}: the CPU); {} until a worker took it.
        "devices": session.devices or {},
        # While queued: {queue, needs_gpu, position, workers_online} (analyses.queueing); else None.
        "queue": queue_info(session),
        "logs": [
            {"stream": log.stream, "text": log.text} for log in reversed(session.logs.order_by("-id")[:500])
        ],
    }
