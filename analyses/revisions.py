"""ML task revisions: every save of a design is kept (who, when, an optional message), any two can
be diffed, and an old one restored as a new revision; history is never rewritten.

A revision's ``number`` is the ML task's version after that save, so the compare-and-set on
``MLTask.version`` that refuses stale saves also numbers the history, and the unique
(mltask, number) constraint backs it in the database.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from analyses.compare import diff_designs
from analyses.models import MLTask, MLTaskRevision
from analyses.serializers import iso

MAX_MESSAGE = 500
CREATED = "Created"


def _label(number: int) -> str:
    return f"revision {number}"


def diff_revisions(a: MLTaskRevision, b: MLTaskRevision) -> dict[str, Any]:
    """What changed from revision ``a`` to ``b``: the same shape as a sessions' diff
    (analyses.compare.diff_designs) with each side's revision."""
    return {
        "a": revision_json(a),
        "b": revision_json(b),
        **diff_designs(a.design, b.design, _label(a.number), _label(b.number)),
    }


def summarize(before: dict[str, Any] | None, after: dict[str, Any]) -> str:
    """One line saying what changed: "Architecture code (+3 −1) · training.epochs: 10 → 20"."""
    if before is None:
        return CREATED
    diff = diff_designs(before, after, "a", "b")
    parts = []
    for item in diff["code"]:
        if item["changed"]:
            lines = item["diff"].splitlines()[2:]  # past the ---/+++ headers
            added = sum(1 for line in lines if line.startswith("+"))
            removed = sum(1 for line in lines if line.startswith("-"))
            parts.append(f"{item['label']} code (+{added} −{removed})")
    settings = diff["settings"]
    for item in settings[:3]:
        parts.append(f"{item['path']}: {_short(item['before'])} → {_short(item['after'])}")
    if len(settings) > 3:
        parts.append(f"{len(settings) - 3} more setting{'s' if len(settings) > 4 else ''}")
    text = " · ".join(parts) or "No change"
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _short(value: Any) -> str:
    text = "(not set)" if value is None else str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def clean_message(message: str | None) -> str:
    return (message or "").strip()[:MAX_MESSAGE]


def record_revision(
    mltask: MLTask, author, message: str | None = "", restored_from: int | None = None
) -> MLTaskRevision:
    """The revision of ``mltask`` as it is now (its version and design). Call it inside the
    transaction of the save, right after the version changed, so a save and its revision commit
    together or not at all."""
    previous = (
        MLTaskRevision.objects.filter(mltask=mltask, number__lt=mltask.version)
        .only("design")
        .order_by("-number")
        .first()
    )
    design = mltask.design()
    return MLTaskRevision.objects.create(
        mltask=mltask,
        number=mltask.version,
        author=author,
        created_at=timezone.now(),
        message=clean_message(message),
        summary=summarize(previous.design if previous else None, design),
        restored_from=restored_from,
        design=design,
    )


def current_revision(mltask: MLTask) -> MLTaskRevision:
    """The revision of the ML task's current version; recorded now for an ML task whose history
    lacks it (one made before revisions, or by code that did not record one)."""
    found = MLTaskRevision.objects.filter(mltask=mltask, number=mltask.version).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return record_revision(mltask, mltask.updated_by)
    except IntegrityError:  # recorded meanwhile by a concurrent request
        return MLTaskRevision.objects.get(mltask=mltask, number=mltask.version)


def revision_json(revision: MLTaskRevision, with_design: bool = False) -> dict[str, Any]:
    answer = {
        "number": revision.number,
        "author": revision.author.username if revision.author else None,
        "created_at": iso(revision.created_at),
        "message": revision.message,
        "summary": revision.summary,
        "restored_from": revision.restored_from,
    }
    if with_design:
        answer["design"] = revision.design
    return answer


def conflict_details(mltask: MLTask, base_version: int) -> dict[str, Any]:
    """For a save refused because the client's ``base_version`` is stale: the revisions saved
    since (who and when) and the diff from the base to the current version (None when the base
    is not in the history, e.g. a version from before history began)."""
    revisions = MLTaskRevision.objects.filter(mltask=mltask).select_related("author")
    since = [revision_json(r) for r in revisions.filter(number__gt=base_version, number__lte=mltask.version)]
    base = revisions.filter(number=base_version).first()
    latest = revisions.filter(number=mltask.version).first()
    diff = diff_revisions(base, latest) if base and latest and base.number < latest.number else None
    return {"base": base_version, "latest": mltask.version, "since": since, "diff": diff}


def restore_revision(
    mltask: MLTask, revision: MLTaskRevision, version: int, user, message: str | None = ""
) -> MLTaskRevision | None:
    """Make ``revision``'s design the ML task's current one as a new revision ("Restored revision
    n"); None when ``version`` is stale (a teammate saved since: compare-and-set, as edits)."""
    design = revision.design
    targets = design.get("targets") or [
        {"name": design["target"], "prediction_type": design["prediction_type"], "classes": design["classes"]}
    ]
    fields = {
        "target": targets[0]["name"],
        "prediction_type": targets[0]["prediction_type"],
        "classes": targets[0].get("classes"),
        "extra_targets": targets[1:],
        "features": design.get("features") or [],
        "split": design.get("split") or {},
        "architecture_code": design.get("architecture_code") or "",
        "preprocessing_code": design.get("preprocessing_code") or "",
        "training": design.get("training") or {},
        "metric": design.get("metric") or "",
    }
    note = f"Restored revision {revision.number}"
    extra = clean_message(message)
    with transaction.atomic():
        updated = MLTask.objects.filter(pk=mltask.pk, version=version).update(
            **fields, version=version + 1, updated_by=user, updated_at=timezone.now()
        )
        if not updated:
            return None
        mltask.refresh_from_db()
        return record_revision(
            mltask, user, f"{note}: {extra}" if extra else note, restored_from=revision.number
        )
