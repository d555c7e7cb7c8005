# Written by hand (issue 6): ML task revisions, the revision each session ran, and a first revision
# for every existing ML task (its current version), so history starts where the data is.
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def _design(mltask) -> dict:
    """MLTask.design() as of this migration (historical models have no methods)."""
    first = {"name": mltask.target, "prediction_type": mltask.prediction_type, "classes": mltask.classes}
    return {
        "target": mltask.target,
        "prediction_type": mltask.prediction_type,
        "classes": mltask.classes,
        "targets": [first, *(mltask.extra_targets or [])],
        "features": mltask.features,
        "split": mltask.split,
        "architecture_code": mltask.architecture_code,
        "preprocessing_code": mltask.preprocessing_code,
        "training": mltask.training,
        "metric": mltask.metric,
    }


def first_revisions(apps, schema_editor) -> None:
    MLTask = apps.get_model("analyses", "MLTask")
    MLTaskRevision = apps.get_model("analyses", "MLTaskRevision")
    Session = apps.get_model("analyses", "Session")
    for mltask in MLTask.objects.iterator():
        revision = MLTaskRevision.objects.create(
            mltask=mltask,
            number=mltask.version,
            author_id=mltask.updated_by_id,
            created_at=mltask.updated_at,
            summary="Current design when history began",
            design=_design(mltask),
        )
        # Sessions that ran this very version (their snapshot says so) ran this revision.
        Session.objects.filter(mltask=mltask, design__version=mltask.version).update(revision=revision)


class Migration(migrations.Migration):
    dependencies = [
        ("analyses", "0008_scoringjob"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="MLTaskRevision",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("number", models.PositiveIntegerField()),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("message", models.CharField(blank=True, default="", max_length=500)),
                ("summary", models.CharField(blank=True, default="", max_length=500)),
                ("restored_from", models.PositiveIntegerField(blank=True, null=True)),
                ("design", models.JSONField()),
                (
                    "author",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "mltask",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="revisions",
                        to="analyses.mltask",
                    ),
                ),
            ],
            options={
                "ordering": ["-number"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("mltask", "number"), name="one_revision_per_mltask_version"
                    )
                ],
            },
        ),
        migrations.AddField(
            model_name="session",
            name="revision",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="sessions",
                to="analyses.mltaskrevision",
            ),
        ),
        migrations.RunPython(first_revisions, migrations.RunPython.noop),
    ]
