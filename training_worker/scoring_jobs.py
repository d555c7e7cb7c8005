"""Running one batch scoring job (analyses.models.ScoringJob) on a worker.

Claimed atomically (queued → running: a second delivery does nothing), then the sandboxed scorer
(training_worker.scoring_runs) predicts the input dataset a chunk at a time while its ``scored``
events update the job's progress. Its prediction columns are checked and joined, chunk by chunk,
to the input dataset's own columns (read here, never from the sandbox), and the result is stored
through the normal dataset storage (analyses.datasets.store_dataset: Parquet, schema, statistics)
as a new dataset of the project. The job ends succeeded with it, or failed with a message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.utils import timezone

from analyses.models import Dataset, ScoringJob
from training_worker.prediction_table import column_names
from training_worker.scoring_runs import (
    NoModel,
    ScoringFailed,
    check_outcome,
    checked_batch,
    open_output,
    run,
    session_targets,
    workspace,
    write_job,
)
from training_worker.trained_models import link_or_copy

log = logging.getLogger(__name__)

MERGE_ROWS = 64 * 1024  # rows joined at a time: memory stays flat whatever the dataset's size
PROGRESS_SECONDS = 0.5  # the job row is updated at most this often while rows arrive


def run_scoring_job(job_id: int, worker_name: str) -> None:
    """Claim and run one job; every outcome ends in the job row (succeeded or failed)."""
    now = timezone.now()
    claimed = ScoringJob.objects.filter(pk=job_id, status=ScoringJob.Status.QUEUED).update(
        status=ScoringJob.Status.RUNNING, worker=worker_name[:200], started_at=now
    )
    if not claimed:
        return
    job = ScoringJob.objects.select_related(
        "session__mltask__analysis__project", "dataset", "created_by"
    ).get(pk=job_id)
    try:
        result = _score(job)
    except ScoringFailed as exc:
        _finish(job_id, ScoringJob.Status.FAILED, error=exc.error)
    except NoModel as exc:
        _finish(job_id, ScoringJob.Status.FAILED, error=_error("model", str(exc)))
    except Exception as exc:  # the platform's own failure: said plainly, logged in full
        log.exception("scoring job %s failed", job_id)
        _finish(job_id, ScoringJob.Status.FAILED, error=_error("platform", f"Scoring failed: {exc}"))
    else:
        _finish(job_id, ScoringJob.Status.SUCCEEDED, result_dataset=result)


def _error(phase: str, message: str) -> dict[str, Any]:
    return {"phase": phase, "tab": None, "line": None, "message": message}


def _finish(job_id: int, status: str, **fields: Any) -> None:
    ScoringJob.objects.filter(pk=job_id, status=ScoringJob.Status.RUNNING).update(
        status=status, ended_at=timezone.now(), **fields
    )


def _score(job: ScoringJob) -> Dataset:
    session, dataset = job.session, job.dataset
    if dataset is None:
        raise ScoringFailed(_error("input", "The dataset to score was deleted."))
    targets = session_targets(session)
    source = Path(dataset.file.path)
    images = dataset.images_path
    with workspace(f"job-{job.pk}", use_spare=images is None) as space:
        link_or_copy(source, space.workdir / "dataset.parquet")
        spec: dict[str, Any] = {"kind": "dataset", "path": "dataset.parquet"}
        if images is not None:  # read-only: the sandbox mounts what the work dir links to
            (space.workdir / "images").symlink_to(images.resolve(), target_is_directory=True)
            spec["images"] = "images"
        write_job(space, session, spec)
        outcome = run(space, on_progress=_progress(job.pk, dataset.rows))
        ScoringJob.objects.filter(pk=job.pk).update(isolation=outcome.isolation)
        check_outcome(outcome, "the time limit")
        merged = _merge(source, open_output(space), targets, session.pk)
    try:
        name = f"{dataset.name} scored by session {session.pk}"[:200]
        project = session.mltask.analysis.project
        from analyses.datasets import store_dataset

        return store_dataset(
            project,
            merged,
            f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', dataset.name)[:100]}-scored-{session.pk}.parquet",
            name,
            job.created_by,
            merged.stat().st_size,
        )
    finally:
        merged.unlink(missing_ok=True)


def _progress(job_id: int, total: int) -> Callable[[int, int], None]:
    last = [0.0]

    def update(rows: int, _of: int) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_SECONDS and rows < total:
            return
        last[0] = now
        ScoringJob.objects.filter(pk=job_id).update(rows_done=min(rows, total))

    return update


def _merge(source: Path, predictions: pq.ParquetFile, targets: list, session_id: int) -> Path:
    """The input dataset's columns, then the checked prediction columns, as a temporary Parquet file.
    A prediction column whose name the input already uses gets `` (session N)`` appended."""
    with contextlib.closing(predictions):
        parquet = pq.ParquetFile(source)
        if predictions.metadata.num_rows != parquet.metadata.num_rows:
            raise ScoringFailed(
                _error(
                    "runner",
                    f"The scorer's output was refused: {predictions.metadata.num_rows} rows of predictions "
                    f"for {parquet.metadata.num_rows} rows.",
                )
            )
        taken = set(parquet.schema_arrow.names)
        names = [
            name if name not in taken else f"{name} (session {session_id})" for name in column_names(targets)
        ]
        scratch = Path(settings.FILE_UPLOAD_TEMP_DIR or tempfile.gettempdir())
        scratch.mkdir(parents=True, exist_ok=True)
        handle, path = tempfile.mkstemp(suffix=".parquet", dir=scratch)
        os.close(handle)
        target = Path(path)
        try:
            pieces = AlignedRows(predictions.iter_batches(batch_size=MERGE_ROWS), targets)
            writer = None
            with contextlib.ExitStack() as stack:
                for batch in parquet.iter_batches(batch_size=MERGE_ROWS):
                    table = pa.Table.from_batches([batch])
                    for name, column in zip(names, pieces.take(len(batch)).columns, strict=True):
                        table = table.append_column(name, column)
                    if writer is None:
                        writer = stack.enter_context(pq.ParquetWriter(str(target), table.schema))
                    writer.write_table(table)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return target


class AlignedRows:
    """The checked prediction batches, handed out in pieces of any length (the input's batches)."""

    def __init__(self, batches: Iterator[pa.RecordBatch], targets: list) -> None:
        self.batches, self.targets = batches, targets
        self.buffer: pa.Table | None = None

    def take(self, rows: int) -> pa.Table:
        while self.buffer is None or self.buffer.num_rows < rows:
            batch = next(self.batches, None)
            if batch is None:
                raise ScoringFailed(_error("runner", "The scorer's output was refused: too few rows."))
            checked = checked_batch(batch, self.targets)
            self.buffer = checked if self.buffer is None else pa.concat_tables([self.buffer, checked])
        piece, self.buffer = self.buffer.slice(0, rows), self.buffer.slice(rows)
        return piece.combine_chunks()


def recover_embedded_jobs() -> tuple[int, int]:
    """Embedded mode, at start-up: jobs the last web process was running are lost (failed), and
    its in-memory queue is gone (queued jobs are dispatched again). Returns (failed, re-queued)."""
    from training_worker.dispatch import dispatch_scoring

    lost = ScoringJob.objects.filter(status=ScoringJob.Status.RUNNING).update(
        status=ScoringJob.Status.FAILED,
        ended_at=timezone.now(),
        error=_error("runner", "The platform restarted while this job ran; score the dataset again."),
    )
    waiting = list(
        ScoringJob.objects.filter(status=ScoringJob.Status.QUEUED).order_by("id").values_list("pk", flat=True)
    )
    for job_id in waiting:
        dispatch_scoring(job_id)
    return lost, len(waiting)
