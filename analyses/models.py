"""The domain model: Project → Dataset / Analysis → MLTask → Session → EpochMetric."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone

from analyses.sources import summary
from training_worker.events import FINAL_STATUSES, Status


class Role(models.TextChoices):
    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"


# What each role may do; higher includes lower.
ROLE_RANK = {Role.VIEWER: 1, Role.EDITOR: 2, Role.OWNER: 3}


class Project(models.Model):
    """The team unit of sharing: everything below belongs to exactly one project."""

    name = models.CharField(max_length=200)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="projects")
    variables = models.JSONField(default=dict)  # read by get_variable() in user code

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's or a whole Django group's role in a project (exactly one of `user` and `group`).

    A user's role is the highest of their own membership and those of their groups (analyses.access).
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="memberships"
    )
    group = models.ForeignKey(
        "auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="project_memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user"),
            models.UniqueConstraint(fields=["project", "group"], name="one_membership_per_group"),
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, group__isnull=True)
                | models.Q(user__isnull=True, group__isnull=False),
                name="membership_user_xor_group",
            ),
        ]


class ApiToken(models.Model):
    """`Authorization: Token <key>` for scripts and the websocket of non-browser clients."""

    key = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    created_at = models.DateTimeField(auto_now_add=True)
    name = models.CharField(max_length=100, blank=True, default="")  # what the user calls it
    last_used_at = models.DateTimeField(null=True, blank=True)  # refreshed at most once a minute

    @classmethod
    def issue(cls, user, name: str = "") -> ApiToken:
        return cls.objects.create(user=user, key=secrets.token_hex(20), name=name[:100])

    @property
    def prefix(self) -> str:
        """What lists show of the key: enough to recognise it, too little to use it."""
        return self.key[:8]

    def touch(self) -> None:
        """Note a use; at most one write a minute, so a busy script does not write on every call."""
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at >= timedelta(minutes=1):
            ApiToken.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now


class Dataset(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    file = models.FileField(upload_to="datasets/%Y/%m/")
    original_filename = models.CharField(max_length=255, blank=True)
    rows = models.PositiveBigIntegerField(default=0)
    columns = models.JSONField(default=list)  # [{name, type, missing, distinct}]
    size_bytes = models.PositiveBigIntegerField(default=0)
    # Image datasets: the managed folder holding the images, relative to MEDIA_ROOT ("" for none).
    images_dir = models.CharField(max_length=255, blank=True, default="")
    # How the upload was read (format, encoding, delimiter, …; see analyses.sources); {} if unknown.
    source = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    def column(self, name: str) -> dict | None:
        return next((c for c in self.columns if c["name"] == name), None)

    @property
    def images_path(self) -> Path | None:
        """The folder of an image dataset's images; None for a dataset without images."""
        return Path(settings.MEDIA_ROOT) / self.images_dir if self.images_dir else None

    @property
    def source_summary(self) -> str:
        """How the upload was read, in one line ("CSV · UTF-8 (BOM) · delimiter ';' · gzip")."""
        return summary(self.source)


class Analysis(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="analyses")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="analyses")
    name = models.CharField(max_length=200)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)


class PredictionType(models.TextChoices):
    REGRESSION = "regression"
    BINARY = "binary"
    MULTICLASS = "multiclass"


class MLTask(models.Model):
    """A modelling problem on an analysis' dataset, with its design and code.

    `version` increases on every save; a save that names an older version is refused (409) so a
    teammate's edit is never silently overwritten.
    """

    analysis = models.ForeignKey(Analysis, on_delete=models.CASCADE, related_name="mltasks")
    target = models.CharField(max_length=255)
    prediction_type = models.CharField(max_length=12, choices=PredictionType.choices)
    classes = models.JSONField(null=True, blank=True)  # sorted target labels (classification)
    # Multi-output: the targets after the first (target, prediction_type, classes above), each
    # {name, prediction_type, classes}; the model then has one output per target, named after it.
    extra_targets = models.JSONField(default=list, blank=True)
    features = models.JSONField(default=list)
    split = models.JSONField(default=dict)
    architecture_code = models.TextField()
    # The Preprocessing tab: preprocess_image(path) for image features with the custom loader.
    preprocessing_code = models.TextField(blank=True, default="")
    training = models.JSONField(default=dict)
    metric = models.CharField(max_length=50, blank=True)
    version = models.PositiveIntegerField(default=1)
    # The last dry run (Validate): {version, ok, errors, input_shapes, params, at}. Train refuses
    # the version it failed on; any save makes a new version, so a fix clears the refusal.
    validation = models.JSONField(null=True, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)
    created_at = models.DateTimeField(auto_now_add=True)

    @property
    def project(self) -> Project:
        return self.analysis.project

    @property
    def targets(self) -> list[dict]:
        """Every target, the first one first: [{name, prediction_type, classes}, ...]."""
        first = {"name": self.target, "prediction_type": self.prediction_type, "classes": self.classes}
        return [first, *(self.extra_targets or [])]

    def design(self) -> dict:
        return {
            "target": self.target,
            "prediction_type": self.prediction_type,
            "classes": self.classes,
            "targets": self.targets,
            "features": self.features,
            "split": self.split,
            "architecture_code": self.architecture_code,
            "preprocessing_code": self.preprocessing_code,
            "training": self.training,
            "metric": self.metric,
        }


class MLTaskRevision(models.Model):
    """One saved state of an ML task's design (analyses.revisions): creation, every edit and every
    restore add one, so history is never rewritten. ``number`` is the ML task's version after that
    save; ``design`` is ``MLTask.design()`` at that version."""

    mltask = models.ForeignKey(MLTask, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    message = models.CharField(max_length=500, blank=True, default="")
    # What changed from the revision before, in one line: kept so the history list reads no designs.
    summary = models.CharField(max_length=500, blank=True, default="")
    restored_from = models.PositiveIntegerField(null=True, blank=True)  # the number a restore brought back
    design = models.JSONField()

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["mltask", "number"], name="one_revision_per_mltask_version")
        ]


class Session(models.Model):
    """One training run, with a frozen snapshot of its ML task's design.

    Allowed transitions (the database row is the truth; writers use conditional updates):
        queued → starting → running → succeeded | interrupted | failed | aborted
        queued → aborted (aborted or interrupted before a worker took it)
        starting → failed | aborted
    A session in a FINAL_STATUSES status never changes again.
    """

    mltask = models.ForeignKey(MLTask, on_delete=models.CASCADE, related_name="sessions")
    status = models.CharField(
        max_length=12, choices=[(s.value, s.value) for s in Status], default=Status.QUEUED, db_index=True
    )
    design = models.JSONField()
    # The ML task revision it ran (a resumed session: its source's); None for sessions older than history.
    revision = models.ForeignKey(
        "MLTaskRevision", null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    phase = models.CharField(max_length=30, blank=True)
    epochs_total = models.PositiveIntegerField(default=0)
    epochs_done = models.PositiveIntegerField(default=0)
    progress = models.JSONField(null=True, blank=True)  # last {epoch, batch, of}
    model_info = models.JSONField(null=True, blank=True)  # {summary, params, input_shapes, n_classes}
    final_metrics = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)  # {phase, tab, line, message, traceback}
    artifacts = models.JSONField(default=dict)  # name -> path relative to DATA_DIR
    # How the runner was contained (training_worker/sandbox.py): {sandboxed, missing, notes, uid,
    # layout, limits}; {} until it started. `missing` non-empty: degraded, said on the session page.
    isolation = models.JSONField(default=dict, blank=True)
    interrupt_requested_at = models.DateTimeField(null=True, blank=True)
    abort_requested_at = models.DateTimeField(null=True, blank=True)
    # The GPUs its runner was given ({"gpus": [0, 1], "waited_seconds": …}; {"gpus": []}: the CPU).
    devices = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class EpochMetric(models.Model):
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="epoch_metrics")
    epoch = models.PositiveIntegerField()
    seconds = models.FloatField()
    values = models.JSONField()
    partial = models.BooleanField(default=False)

    class Meta:
        ordering = ["epoch"]
        constraints = [models.UniqueConstraint(fields=["session", "epoch"], name="one_row_per_epoch")]


class SessionLog(models.Model):
    """User prints and warnings, kept so a reopened page shows the console it missed."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="logs")
    stream = models.CharField(max_length=10)
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]


class Worker(models.Model):
    """A training worker that said it is up (training_worker.workers): what it offers, and when it
    last said so. Offline once ``last_seen`` is older than a few heartbeats."""

    name = models.CharField(max_length=200, unique=True)
    host = models.CharField(max_length=200)
    gpus = models.JSONField(default=list)  # [{index, name, memory_mb}]
    slots = models.PositiveIntegerField(default=1)
    queues = models.JSONField(default=list)
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["name"]


class ScoringJob(models.Model):
    """A session's model applied to another dataset of its project (training_worker.scoring_jobs):
    the result is a new Dataset, the input's columns plus the prediction columns.

    Statuses: queued → running → succeeded | failed (conditional updates, as for sessions).
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="scoring_jobs")
    dataset = models.ForeignKey(Dataset, null=True, on_delete=models.SET_NULL, related_name="+")
    result_dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="scored_by"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    rows_done = models.PositiveBigIntegerField(default=0)
    rows_total = models.PositiveBigIntegerField(default=0)
    error = models.JSONField(null=True, blank=True)  # {phase, tab, line, message}
    worker = models.CharField(max_length=200, blank=True)
    isolation = models.JSONField(default=dict, blank=True)  # as Session.isolation
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    @property
    def is_final(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)


class Activity(models.Model):
    """One entry of a project's activity feed (analyses.activity): who did what to which object.

    The object is kept as type + id + a label written at the time, so an entry still reads well
    once its object is renamed or deleted. ``actor`` None: the platform (a session that ended).
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="activities")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verb = models.CharField(max_length=40)
    object_type = models.CharField(max_length=40, blank=True, default="")
    object_id = models.PositiveBigIntegerField(null=True, blank=True)
    label = models.CharField(max_length=255, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["project", "-created_at"], name="activity_project_recent")]
