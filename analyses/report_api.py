"""``GET /api/sessions/{id}/report/``: the model report of a trained or interrupted session.

Registered on the API of analyses.api (``api.add_router("", router)``), whose authentication and
error handlers apply: outsiders get 404, errors are ``{"error": ...}``.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router
from ninja.errors import HttpError

from analyses import access
from analyses.reports import NoReport, session_report

router = Router(tags=["sessions"])


@router.get(
    "/sessions/{session_id}/report/", summary="The model report of a session", url_name="session_report"
)
def session_report_view(request: HttpRequest, session_id: int) -> dict[str, Any]:
    """The model report (viewer role): per target, the binary confusion counts at every threshold
    (0.00 to 1.00) with the best one, ROC / PR / lift curves and probability densities; the
    multiclass confusion matrix and per-class ROC curves; the regression scatter, error histogram
    and error by decile. Then the final metrics, the learning curves with the kept epoch, the
    model's layers and graph, and the code, settings, dataset, seed, library versions and device
    that produced it. 404 with the reason while the session has no predictions."""
    session = access.get_session_for(request.user, session_id)
    try:
        return session_report(session)
    except NoReport as exc:
        raise HttpError(404, str(exc)) from None
