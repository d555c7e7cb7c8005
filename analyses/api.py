"""The public JSON API (../shared/API.md), served under /api/ with its OpenAPI schema at /api/schema/."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pandas as pd
from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
    ValidationError,
)
from django.db import transaction
from django.http import Http404, HttpRequest
from django.http.multipartparser import MultiPartParserError
from django.utils import timezone
from ninja import Body, Field, Form, NinjaAPI, Schema, Status
from ninja import File as FileParam
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.files import UploadedFile
from ninja.security import APIKeyHeader, SessionAuth

from analyses import access, activity, health, teams
from analyses.datasets import (
    DatasetError,
    guess_prediction_type,
    override_types,
    read_rows,
    read_target,
    store_dataset,
    target_labels,
)
from analyses.design import (
    DesignError,
    check_target_names,
    clean_features,
    clean_prediction_type,
    clean_split,
    clean_training,
    default_design,
    default_metric,
    retarget_features,
)
from analyses.models import Analysis, ApiToken, Dataset, Membership, MLTask, Project, Role
from analyses.revisions import conflict_details, record_revision
from analyses.serializers import (
    analysis_json,
    dataset_json,
    mltask_json,
    project_json,
    session_detail,
    session_summary,
)
from analyses.sessions import (
    SessionStateError,
    request_abort,
    request_interrupt,
    resume_session,
    start_session,
)
from analyses.validation import validate_design
from training_worker.defaults import default_architecture_code, default_multi_output_code
from training_worker.metrics import metric_names
from webapp import security

MAX_PAGE = 1000


class TokenAuth(APIKeyHeader):
    """`Authorization: Token <key>`."""

    param_name = "Authorization"

    def authenticate(self, request: HttpRequest, key: str | None):
        if not key or not key.startswith("Token "):
            return None
        token = (
            ApiToken.objects.select_related("user").filter(key=key[6:].strip(), user__is_active=True).first()
        )
        if token is None:
            return None
        token.touch()
        request.user = token.user
        return token.user


api = NinjaAPI(
    title="DL Studio API",
    version="1",
    description="Projects, datasets, ML tasks and training sessions. See ../shared/API.md.",
    auth=[TokenAuth(), SessionAuth()],
    urls_namespace="api",
    openapi_url="/schema/",
    docs_url="/docs/",
)


# Errors are always {"error": "<human message>", ...}; never a stack trace.
@api.exception_handler(Http404)
def not_found(request, exc):
    return api.create_response(request, {"error": "Not found."}, status=404)


@api.exception_handler(PermissionDenied)
def forbidden(request, exc):
    return api.create_response(request, {"error": str(exc) or "Not allowed."}, status=403)


@api.exception_handler(AuthenticationError)
def unauthenticated(request, exc):
    return api.create_response(
        request,
        {"error": "Log in, or send the header Authorization: Token <key> (POST /api/token/)."},
        status=401,
    )


@api.exception_handler(HttpError)
def http_error(request, exc: HttpError):
    return api.create_response(request, {"error": str(exc)}, status=exc.status_code)


@api.exception_handler(NinjaValidationError)
def invalid_request(request, exc: NinjaValidationError):
    parts = []
    for err in exc.errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "payload", "query", "form"))
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return api.create_response(request, {"error": "; ".join(parts), "detail": exc.errors}, status=422)


@api.exception_handler(DesignError)
@api.exception_handler(DatasetError)
def bad_input(request, exc):
    return api.create_response(request, {"error": str(exc)}, status=400)


# Bodies Django refuses to read: JSON errors rather than its HTML "Bad Request (400)" page.
@api.exception_handler(RequestDataTooBig)
def body_too_large(request, exc):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / 2**20
    message = f"The request body is larger than {limit:.1f} MB; send data as a file (multipart `file`)."
    return api.create_response(request, {"error": message}, status=413)


@api.exception_handler(TooManyFieldsSent)
@api.exception_handler(TooManyFilesSent)
@api.exception_handler(MultiPartParserError)
def unreadable_body(request, exc):
    return api.create_response(request, {"error": f"The request body cannot be read: {exc}"}, status=400)


# ---------------------------------------------------------------- identity


class Credentials(Schema):
    username: str
    password: str


@api.post("/token/", auth=None, tags=["identity"])
def issue_token(request, payload: Credentials):
    """Refused with 429 (and Retry-After) after too many failed logins (webapp.security)."""
    address = security.client_address(request)
    refused = security.throttled(payload.username, address)
    if refused is not None:
        response = api.create_response(request, {"error": refused}, status=429)
        response["Retry-After"] = security.retry_after()
        return response
    user = authenticate(request, username=payload.username, password=payload.password)
    if user is None:  # counted by webapp.security (user_login_failed)
        raise HttpError(401, "Wrong username or password.")
    security.record_success(payload.username, address)
    # Named for where it came from: the Profile page lists tokens by name.
    return {"token": ApiToken.issue(user, name="POST /api/token/").key}


class NewUser(Schema):
    username: str
    password: str
    email: str = ""


@api.post("/users/", response={201: dict}, tags=["identity"])
def create_user(request, payload: NewUser):
    if not request.user.is_staff:
        raise PermissionDenied("Only staff can create accounts.")
    User = get_user_model()
    if User.objects.filter(username=payload.username).exists():
        raise HttpError(409, f"A user named {payload.username!r} already exists.")
    try:
        validate_password(payload.password)
    except ValidationError as exc:
        raise HttpError(400, " ".join(exc.messages)) from None
    user = User.objects.create_user(payload.username, payload.email, payload.password)
    return Status(201, {"id": user.pk, "username": user.username})


@api.get("/health/", auth=None, tags=["identity"])
def get_health(request):
    logged_in = request.user.is_authenticated or TokenAuth()(request) is not None
    return health.report(detailed=logged_in)


@api.get("/workers/", tags=["identity"])
def list_workers(request):
    """Training workers seen in the last hour: online or not, their GPUs (and the session holding
    each), task slots and queues (training_worker.workers)."""
    from training_worker.workers import workers_json

    return workers_json()


# ---------------------------------------------------------------- projects


class NewProject(Schema):
    name: str


@api.get("/projects/", tags=["projects"])
def list_projects(request):
    roles = access.roles_of(request.user)  # own memberships and the user's groups'
    return [project_json(project, roles[project.pk]) for project in access.projects_of(request.user)]


@api.post("/projects/", response={201: dict}, tags=["projects"])
def create_project(request, payload: NewProject):
    name = payload.name.strip()
    if not name:
        raise HttpError(400, "A project needs a name.")
    with transaction.atomic():
        project = Project.objects.create(name=name[:200], created_by=request.user)
        Membership.objects.create(project=project, user=request.user, role=Role.OWNER)
    return Status(201, project_json(project, Role.OWNER))


@api.get("/projects/{project_id}/", tags=["projects"])
def get_project(request, project_id: int):
    project = access.get_project_for(request.user, project_id)
    members = teams.members_json(project)
    return {
        **project_json(project, access.role_in(request.user, project)),
        "members": members["users"],
        "groups": members["groups"],
        "datasets": [dataset_json(d) for d in project.datasets.order_by("name")],
        "analyses": [analysis_json(a) for a in project.analyses.order_by("name")],
    }


class NewMember(Schema):
    username: str | None = None
    group: str | None = None  # a Django group's name: each of its users gets the role
    role: Role


@api.post("/projects/{project_id}/members/", response={201: dict}, tags=["projects"])
def add_member(request, project_id: int, payload: NewMember):
    """Add a user (`username`) or a whole group (`group`) with `role`, or change its role (owners);
    409 when that would leave the project without an owner."""
    project = access.get_project_for(request.user, project_id, Role.OWNER)
    previous = activity.member_role(project, payload.username, payload.group)  # feed: added or changed?
    member = teams.set_member(project, payload.role, username=payload.username, group=payload.group)
    activity.member_set(project, request.user, member, previous)
    return Status(201, member)


@api.delete("/projects/{project_id}/members/{username}/", tags=["projects"])
def remove_member(request, project_id: int, username: str):
    project = access.get_project_for(request.user, project_id, Role.OWNER)
    teams.remove_member(project, username=username)  # 409 for the last owner (analyses.teams)
    activity.record(project, request.user, "member_removed", label=username)
    return {"removed": username}


@api.get("/projects/{project_id}/variables/", tags=["projects"])
def get_variables(request, project_id: int):
    return access.get_project_for(request.user, project_id).variables


@api.put("/projects/{project_id}/variables/", tags=["projects"])
def put_variables(request, project_id: int, payload: dict[str, Any] = Body(...)):
    project = access.get_project_for(request.user, project_id, Role.OWNER)  # owners manage variables
    teams.check_variables(payload)
    changed = activity.changed_keys(project.variables, payload)
    project.variables = payload
    project.save(update_fields=["variables"])
    activity.record(project, request.user, "variables_changed", names=changed)
    return project.variables


# ---------------------------------------------------------------- datasets


@api.get("/projects/{project_id}/datasets/", tags=["datasets"])
def list_datasets(request, project_id: int):
    project = access.get_project_for(request.user, project_id)
    return [dataset_json(d) for d in project.datasets.order_by("name")]


@api.post("/projects/{project_id}/datasets/", response={201: dict}, tags=["datasets"])
def upload_dataset(request, project_id: int, file: UploadedFile = FileParam(None), name: str = Form("")):
    project = access.get_project_for(request.user, project_id, Role.EDITOR)
    if getattr(request, "upload_too_large", False):
        raise HttpError(
            413, f"The file is larger than the {settings.MAX_UPLOAD_BYTES // 2**20} MB upload limit."
        )
    if file is None:
        raise HttpError(400, "Send the CSV or Parquet file as the multipart field `file`.")
    filename = Path(file.name or "upload.csv").name
    path = Path(file.temporary_file_path())
    dataset = store_dataset(project, path, filename, name, request.user, file.size)
    activity.record(project, request.user, "uploaded", dataset, rows=dataset.rows)
    return Status(201, dataset_json(dataset))


@api.get("/datasets/{dataset_id}/", tags=["datasets"])
def get_dataset(request, dataset_id: int):
    return dataset_json(access.get_dataset_for(request.user, dataset_id))


class ColumnType(Schema):
    name: str
    type: Literal["numeric", "categorical", "text", "date", "image"]


class DatasetEdit(Schema):
    columns: list[ColumnType]


@api.patch("/datasets/{dataset_id}/", tags=["datasets"])
def edit_dataset(request, dataset_id: int, payload: DatasetEdit):
    """Override column types; the inferred one stays in `inferred_type`, so an override can be undone.

    `image` is accepted where the dataset has an image folder holding every file the column names.
    """
    dataset = access.get_dataset_for(request.user, dataset_id, Role.EDITOR)
    with transaction.atomic():
        dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
        override_types(dataset, [(c.name, c.type) for c in payload.columns])
    activity.record(
        dataset.project,
        request.user,
        "edited_dataset",
        dataset,
        columns={column.name: column.type for column in payload.columns},
    )
    return dataset_json(dataset)


@api.get("/datasets/{dataset_id}/rows/", tags=["datasets"])
def get_rows(request, dataset_id: int, offset: int = 0, limit: int = 100):
    dataset = access.get_dataset_for(request.user, dataset_id)
    if offset < 0 or not 1 <= limit <= MAX_PAGE:
        raise HttpError(400, f"offset must be ≥ 0 and limit between 1 and {MAX_PAGE}.")
    columns, rows = read_rows(dataset, offset, limit)
    return {"offset": offset, "limit": limit, "total": dataset.rows, "columns": columns, "rows": rows}


# ---------------------------------------------------------------- analyses and ML tasks


class NewAnalysis(Schema):
    name: str = ""
    dataset: int


@api.post("/projects/{project_id}/analyses/", response={201: dict}, tags=["analyses"])
def create_analysis(request, project_id: int, payload: NewAnalysis):
    project = access.get_project_for(request.user, project_id, Role.EDITOR)
    dataset = project.datasets.filter(pk=payload.dataset).first()
    if dataset is None:
        raise HttpError(400, f"Dataset {payload.dataset} is not in this project.")
    analysis = Analysis.objects.create(
        project=project,
        dataset=dataset,
        name=(payload.name.strip() or f"Analysis of {dataset.name}")[:200],
        created_by=request.user,
    )
    activity.record(project, request.user, "created_analysis", analysis, dataset=dataset.name)
    return Status(201, analysis_json(analysis))


@api.get("/projects/{project_id}/analyses/", tags=["analyses"])
def list_analyses(request, project_id: int):
    project = access.get_project_for(request.user, project_id)
    return [analysis_json(a) for a in project.analyses.order_by("name")]


@api.get("/analyses/{analysis_id}/", tags=["analyses"])
def get_analysis(request, analysis_id: int):
    return analysis_json(access.get_analysis_for(request.user, analysis_id))


class TargetSpec(Schema):
    name: str
    prediction_type: str | None = None


class NewMLTask(Schema):
    """Either one ``target`` (with its ``prediction_type``), or ``targets`` (2+) for a multi-output model."""

    target: str | None = None
    prediction_type: str | None = None
    targets: list[TargetSpec] | None = None


def classes_for(
    dataset: Dataset, target: str, prediction_type: str, series: pd.Series | None = None
) -> list[str] | None:
    """The target's labels, checked against the prediction type with a message that says the fix.

    ``series``: the target column already read (``read_target``), so a big file is read once.
    """
    series = read_target(dataset, target) if series is None else series
    if series.notna().sum() == 0:
        raise DesignError(f"Target {target!r} has no values.")
    if prediction_type == "regression":
        if not _is_numeric(series):
            raise DesignError(
                f"Target {target!r} is not numeric, so it cannot be a regression target; "
                "choose binary or multiclass."
            )
        return None
    classes = target_labels(dataset, target, series)
    if len(classes) < 2:
        raise DesignError(
            f"Target {target!r} has a single value ({classes[0]!r}); there is nothing to predict."
        )
    if prediction_type == "binary" and len(classes) != 2:
        raise DesignError(
            f"Target {target!r} has {len(classes)} distinct values; binary needs exactly 2. "
            "Choose multiclass."
        )
    return classes


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series)


def _checked_target(dataset: Dataset, name: str, prediction_type: str | None) -> dict[str, Any]:
    """{name, prediction_type, classes} of one target: the column exists, the type fits its values."""
    if dataset.column(name) is None:
        names = ", ".join(c["name"] for c in dataset.columns[:20])
        raise HttpError(
            400, f"Target {name!r} is not a column of dataset {dataset.name!r}. Columns: {names}."
        )
    series = read_target(dataset, name)
    if prediction_type:
        prediction_type = clean_prediction_type(prediction_type)
    else:
        prediction_type = guess_prediction_type(series)
    prediction_type = str(prediction_type)  # a plain string in JSON and in the generated code
    return {
        "name": name,
        "prediction_type": prediction_type,
        "classes": classes_for(dataset, name, prediction_type, series),
    }


def _requested_targets(payload: NewMLTask) -> list[tuple[str, str | None]]:
    if payload.targets is None:
        if payload.target is None:
            raise HttpError(
                400,
                'Name the target: {"target": "<column>"}, or several for a multi-output model: '
                '{"targets": [{"name": "<column>"}, {"name": "<column>"}]}.',
            )
        return [(payload.target, payload.prediction_type)]
    if payload.target is not None or payload.prediction_type is not None:
        raise HttpError(
            400,
            "Send either target (and prediction_type) or targets, not both; "
            "each entry of targets has its own prediction_type.",
        )
    if len(payload.targets) < 2:
        raise HttpError(
            400, 'targets needs 2 or more columns (multi-output); for one target send {"target": "<column>"}.'
        )
    check_target_names([t.name for t in payload.targets])  # duplicates, two targets on one output name
    return [(t.name, t.prediction_type) for t in payload.targets]


@api.post("/analyses/{analysis_id}/mltasks/", response={201: dict}, tags=["analyses"])
def create_mltask(request, analysis_id: int, payload: NewMLTask):
    analysis = access.get_analysis_for(request.user, analysis_id, Role.EDITOR)
    dataset = analysis.dataset
    targets = [_checked_target(dataset, name, kind) for name, kind in _requested_targets(payload)]
    first = targets[0]
    with transaction.atomic():  # the ML task and its first revision, together
        mltask = MLTask.objects.create(
            analysis=analysis,
            target=first["name"],
            prediction_type=first["prediction_type"],
            classes=first["classes"],
            extra_targets=targets[1:],
            updated_by=request.user,
            **default_design(
                dataset, first["name"], first["prediction_type"], targets if len(targets) > 1 else None
            ),
        )
        record_revision(mltask, request.user)
    activity.record(analysis.project_id, request.user, "created_mltask", mltask)
    return Status(201, mltask_json(mltask))


@api.get("/mltasks/{mltask_id}/", tags=["analyses"])
def get_mltask(request, mltask_id: int):
    return mltask_json(access.get_mltask_for(request.user, mltask_id))


class MLTaskEdit(Schema):
    version: int
    prediction_type: str | None = None
    # Every target, the first one first, as at creation; a single entry makes a single-output task.
    targets: list[TargetSpec] | None = None
    architecture_code: str | None = None
    preprocessing_code: str | None = None  # the Preprocessing tab (preprocess_image for custom images)
    training: dict[str, Any] | None = None
    features: list[dict[str, Any]] | None = None
    split: dict[str, Any] | None = None
    metric: str | None = None
    message: str | None = Field(None, max_length=500)  # kept with the revision this save makes


@api.patch("/mltasks/{mltask_id}/", tags=["analyses"])
def edit_mltask(request, mltask_id: int, payload: MLTaskEdit):
    mltask = access.get_mltask_for(request.user, mltask_id, Role.EDITOR)
    dataset = mltask.analysis.dataset
    targets = _edited_targets(mltask, dataset, payload)
    changes: dict[str, Any] = {}
    if targets != mltask.targets:
        changes |= _target_fields(targets) | _followed_code(mltask, targets)
        new_type = targets[0]["prediction_type"]
        # "R2 Score" means nothing for a classifier; "Custom Score" (the Training tab's) fits any type.
        if mltask.metric not in metric_names(new_type, with_custom_score=True):
            changes["metric"] = default_metric(new_type)
    old_names = [t["name"] for t in mltask.targets]
    new_names = [t["name"] for t in targets]
    # One name for a single-target task (its messages say "the target"), else every target.
    target_names = new_names[0] if len(new_names) == 1 else new_names
    if payload.architecture_code is not None:
        changes["architecture_code"] = payload.architecture_code
    if payload.preprocessing_code is not None:
        changes["preprocessing_code"] = payload.preprocessing_code
    if payload.training is not None:
        changes["training"] = clean_training(payload.training, mltask.training)
    if payload.features is not None or set(old_names) != set(new_names):
        # Sent features may not name a target; columns move between targets and inputs as at creation.
        features = mltask.features
        if payload.features is not None:
            features = clean_features(payload.features, dataset, target_names)
        features = retarget_features(features, dataset, old_names, new_names)
        changes["features"] = clean_features(features, dataset, target_names)
    if payload.split is not None or set(old_names) != set(new_names):
        # An explicit test dataset must hold the (new) targets and inputs too.
        changes["split"] = clean_split(
            payload.split or {}, mltask.split, dataset, target_names, changes.get("features", mltask.features)
        )
    if payload.metric is not None:
        first_type = changes.get("prediction_type", mltask.prediction_type)
        custom = bool(changes.get("training", mltask.training).get("metrics", {}).get("custom_score"))
        allowed = metric_names(first_type, with_custom_score=custom)
        if payload.metric not in allowed:
            raise HttpError(
                400,
                f"metric {payload.metric!r} is not a {first_type} metric; use one of {', '.join(allowed)}"
                + (
                    ""
                    if custom
                    else " (Custom Score once a score() function is turned on in the Metrics settings)"
                )
                + ".",
            )
        changes["metric"] = payload.metric
    # Compare-and-set on the version: a stale save is refused, never silently merged. Its
    # revision commits with it (analyses.revisions).
    with transaction.atomic():
        updated = MLTask.objects.filter(pk=mltask.pk, version=payload.version).update(
            **changes, version=payload.version + 1, updated_by=request.user, updated_at=timezone.now()
        )
        if updated:
            mltask.refresh_from_db()
            record_revision(mltask, request.user, payload.message)
    if not updated:
        mltask.refresh_from_db()
        who = mltask.updated_by.username if mltask.updated_by else "someone"
        return api.create_response(
            request,
            {
                "error": f"This ML task was saved by {who} since you opened it (you have version "
                f"{payload.version}, the latest is {mltask.version}). Reload to see their change, "
                "then apply yours again.",
                "current": mltask_json(mltask),
                # Who saved since, and the diff from the client's version to the current one.
                "conflict": conflict_details(mltask, payload.version),
            },
            status=409,
        )
    mltask.refresh_from_db()
    activity.record(
        mltask.project, request.user, "edited_mltask", mltask, version=mltask.version, fields=sorted(changes)
    )
    return mltask_json(mltask)


def _edited_targets(mltask: MLTask, dataset: Dataset, payload: MLTaskEdit) -> list[dict]:
    """The targets after this edit, each checked and its classes recomputed. A target sent without
    a prediction_type keeps its current one; a new target's is guessed, as at creation."""
    if payload.targets is None:
        if payload.prediction_type is None or payload.prediction_type == mltask.prediction_type:
            return mltask.targets
        new_type = str(clean_prediction_type(payload.prediction_type))
        first = {
            **mltask.targets[0],
            "prediction_type": new_type,
            "classes": classes_for(dataset, mltask.target, new_type),
        }
        return [first, *mltask.extra_targets]
    if payload.prediction_type is not None:
        raise HttpError(
            400,
            "Send either prediction_type or targets, not both; "
            "each entry of targets has its own prediction_type.",
        )
    check_target_names([t.name for t in payload.targets])
    current = {t["name"]: t["prediction_type"] for t in mltask.targets}
    return [
        _checked_target(dataset, t.name, t.prediction_type or current.get(t.name)) for t in payload.targets
    ]


def _target_fields(targets: list[dict]) -> dict[str, Any]:
    """The model fields holding ``targets``: the first in target / prediction_type / classes."""
    first = targets[0]
    return {
        "target": first["name"],
        "prediction_type": first["prediction_type"],
        "classes": first["classes"],
        "extra_targets": targets[1:],
    }


def _followed_code(mltask: MLTask, targets: list[dict]) -> dict[str, str]:
    """Untouched default code follows the targets and their types; edited code is the user's and stays."""
    if mltask.architecture_code != _default_code(mltask.targets):
        return {}
    return {"architecture_code": _default_code(targets)}


def _default_code(targets: list[dict]) -> str:
    if len(targets) == 1:
        return default_architecture_code(targets[0]["prediction_type"])
    return default_multi_output_code({t["name"]: t["prediction_type"] for t in targets})


# ---------------------------------------------------------------- sessions


@api.post("/mltasks/{mltask_id}/validate/", tags=["mltasks"])
def validate(request, mltask_id: int):
    """A dry run of the saved design in the sandbox: preprocessing on the first rows, build_model,
    the output-layer check, compile_model (and build_sequence in advanced mode); no training.
    `errors` hold `{phase, tab, line, message}` for the editor's markers."""
    mltask = access.get_mltask_for(request.user, mltask_id, Role.EDITOR)
    version = mltask.version
    result = validate_design(mltask, request.user)
    record = {k: result[k] for k in ("ok", "errors", "input_shapes", "params")}
    # Only if nobody saved meanwhile: the verdict is about the version that was validated.
    MLTask.objects.filter(pk=mltask.pk, version=version).update(
        validation=record | {"version": version, "at": timezone.now().isoformat()}
    )
    return result | {"version": version}


@api.post("/mltasks/{mltask_id}/sessions/", response={201: dict}, tags=["sessions"])
def train(request, mltask_id: int):
    """Refused (400) when the design's current version failed its dry run (Validate)."""
    mltask = access.get_mltask_for(request.user, mltask_id, Role.EDITOR)
    validation = mltask.validation or {}
    if validation.get("version") == mltask.version and not validation.get("ok"):
        reasons = "; ".join(error["message"] for error in validation.get("errors") or []) or "unknown"
        raise HttpError(400, f"This design failed validation, so it cannot train: {reasons} Fix it and save.")
    session = start_session(mltask, request.user)
    activity.session_action(request.user, "trained", session)
    return Status(201, session_summary(session))


class ResumeRequest(Schema):
    epochs: int | None = None  # in all, the epochs already done included; default: as planned


@api.post("/sessions/{session_id}/resume/", response={201: dict}, tags=["sessions"])
def resume(request, session_id: int, payload: ResumeRequest | None = None):
    """Continue an interrupted (or finished) standard-mode session from its last complete epoch as
    a new session whose history starts with the old one's epochs."""
    source = access.get_session_for(request.user, session_id, Role.EDITOR)
    try:
        session = resume_session(source, request.user, payload.epochs if payload else None)
    except SessionStateError as exc:
        raise HttpError(400, str(exc)) from exc
    activity.session_action(request.user, "continued", session, from_session=source.pk)
    return Status(201, session_summary(session))


@api.get("/mltasks/{mltask_id}/sessions/", tags=["sessions"])
def list_sessions(request, mltask_id: int):
    mltask = access.get_mltask_for(request.user, mltask_id)
    return [session_summary(s) for s in mltask.sessions.select_related("created_by", "revision")]


@api.get("/sessions/{session_id}/", tags=["sessions"])
def get_session(request, session_id: int):
    return session_detail(access.get_session_for(request.user, session_id))


@api.post("/sessions/{session_id}/interrupt/", tags=["sessions"])
def interrupt(request, session_id: int):
    session = access.get_session_for(request.user, session_id, Role.EDITOR)
    try:
        stopped = request_interrupt(session)
        activity.session_action(request.user, "interrupted", stopped, status=stopped.status)
        return session_summary(stopped)
    except SessionStateError as exc:
        raise HttpError(409, str(exc)) from None


@api.post("/sessions/{session_id}/abort/", tags=["sessions"])
def abort(request, session_id: int):
    session = access.get_session_for(request.user, session_id, Role.EDITOR)
    try:
        stopped = request_abort(session)
        activity.session_action(request.user, "aborted", stopped, status=stopped.status)
        return session_summary(stopped)
    except SessionStateError as exc:
        raise HttpError(409, str(exc)) from None


@api.get("/sessions/{session_id}/tensorboard/", tags=["sessions"])
def tensorboard_logs(request, session_id: int):
    """The session's TensorBoard event files as a zip (`session-<id>/train/…`, `session-<id>/test/…`);
    unzipped, `tensorboard --logdir session-<id>` opens them. 404 with the reason when it has none."""
    from django.http import FileResponse

    from analyses.tensorboard import NoLogs, zip_logs

    session = access.get_session_for(request.user, session_id)
    try:
        archive = zip_logs(session)
    except NoLogs as exc:
        raise HttpError(404, str(exc)) from None
    return FileResponse(
        archive,
        as_attachment=True,
        filename=f"session-{session.pk}-tensorboard.zip",
        content_type="application/zip",
    )


from analyses.compare_api import router as compare_router  # noqa: E402

api.add_router("", compare_router)

from analyses.report_api import router as report_router  # noqa: E402

api.add_router("", report_router)

from analyses.scoring_api import router as scoring_router  # noqa: E402

api.add_router("", scoring_router)

from analyses.revisions_api import router as revisions_router  # noqa: E402

api.add_router("", revisions_router)

from analyses.teams_api import router as teams_router  # noqa: E402

api.add_router("", teams_router)

from analyses.activity_api import router as activity_router  # noqa: E402

api.add_router("", activity_router)

from analyses.duplicate_api import router as duplicate_router  # noqa: E402

api.add_router("", duplicate_router)
