"""The trained models a session's code may load (``user_api.get_keras_model_from_trained_model``).

The runner sees nothing outside its work dir, so the supervisor hard-links (or copies, across
file systems) the ``.keras`` file of every model the session's user may read into
``<workdir>/trained_models/`` and lists them in the job spec. A link costs no space; the files stay
owned by the worker, so the runner cannot change the originals.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings

from analyses.access import project_ids_of
from analyses.models import Session

FOLDER = "trained_models"
# The most recent models offered; older ones stay reachable by retraining.
MAX_MODELS = 200


def link_trained_models(user: Any, workdir: Path, exclude_session: int | None = None) -> list[dict[str, Any]]:
    """Entries ``{session_id, analysis_id, mltask_id, path}`` (path relative to the work dir) of
    the models ``user`` may read, except ``exclude_session``'s (the session being run)."""
    if user is None:
        return []
    projects = project_ids_of(user)  # the user's own projects and their groups' ones
    sessions = (
        Session.objects.filter(
            mltask__analysis__project_id__in=projects, status__in=("succeeded", "interrupted")
        )
        .exclude(pk=exclude_session)
        .select_related("mltask")
        .order_by("-pk")[:MAX_MODELS]
    )
    entries = []
    for earlier in sessions:
        relative = (earlier.artifacts or {}).get("model")
        source = Path(settings.DATA_DIR) / relative if relative else None
        if source is None or not source.is_file():
            continue
        target = workdir / FOLDER / f"{earlier.pk}.keras"
        target.parent.mkdir(exist_ok=True)
        link_or_copy(source, target)
        entries.append(
            {
                "session_id": earlier.pk,
                "analysis_id": earlier.mltask.analysis_id,
                "mltask_id": earlier.mltask_id,
                "path": f"{FOLDER}/{target.name}",
            }
        )
    return entries


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link (no space, no copy time), or a copy where links cannot be made."""
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(source, target)
