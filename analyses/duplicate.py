"""Duplicating an analysis (with all its ML tasks) or one ML task, within a project or into another.

A copy is independent: designs, code and targets are copied (no sessions, a fresh version 1), and
in another project every dataset it uses (the analysis' dataset, an explicit test dataset) is
copied there too (analyses.dataset_copy), once per duplicate. All of it happens in one transaction;
files copied before a failure are removed.
"""

from __future__ import annotations

import copy as deep
from pathlib import Path

from django.db import transaction

from analyses.dataset_copy import DatasetCopyError, copy_dataset, removed_on_failure
from analyses.design import clean_features, clean_split
from analyses.models import Analysis, Dataset, MLTask, Project
from analyses.revisions import record_revision

# What a copy takes from its ML task; version, validation and sessions start afresh.
DESIGN_FIELDS = (
    "target",
    "prediction_type",
    "classes",
    "extra_targets",
    "features",
    "split",
    "architecture_code",
    "preprocessing_code",
    "training",
    "metric",
)


class DuplicateError(Exception):
    """The copy cannot be made; the message says why, ``details`` (e.g. missing_columns) say more."""

    def __init__(self, message: str, **details) -> None:
        super().__init__(message)
        self.details = details


class DatasetsIn:
    """The datasets a copy in ``project`` uses: the source's own when they are of that project,
    else copies made there (each source dataset copied once)."""

    def __init__(self, project: Project, user, made: list[Path]) -> None:
        self.project, self.user, self.made = project, user, made
        self.copies: dict[int, Dataset] = {}

    def get(self, dataset: Dataset) -> Dataset:
        if dataset.project_id == self.project.pk:
            return dataset
        if dataset.pk not in self.copies:
            try:
                self.copies[dataset.pk] = copy_dataset(dataset, self.project, self.user, self.made)
            except DatasetCopyError as exc:
                raise DuplicateError(str(exc)) from None
        return self.copies[dataset.pk]

    def mapped(self, dataset_id: int) -> int:
        """The id standing for dataset ``dataset_id`` in the copy: its copy's, or its own."""
        return self.copies[dataset_id].pk if dataset_id in self.copies else dataset_id

    @property
    def copied(self) -> list[str]:
        return [d.name for d in self.copies.values()]


def duplicate_analysis(source: Analysis, project: Project, name: str, user) -> tuple[Analysis, list[str]]:
    """A copy of ``source`` in ``project`` with copies of all its ML tasks; returns it and the names
    of the datasets copied into ``project`` for it."""
    default = source.name if project.pk != source.project_id else f"Copy of {source.name}"
    with removed_on_failure() as made, transaction.atomic():
        datasets = DatasetsIn(project, user, made)
        analysis = Analysis.objects.create(
            project=project,
            dataset=datasets.get(source.dataset),
            name=(name.strip() or default)[:200],
            created_by=user,
        )
        for mltask in source.mltasks.order_by("id"):
            _copy(mltask, analysis, user, datasets)
    return analysis, datasets.copied


def duplicate_mltask(source: MLTask, analysis: Analysis, user) -> tuple[MLTask, list[str]]:
    """A copy of ``source`` in ``analysis`` (its own by default). On another dataset, that dataset
    must hold the targets and input columns (DuplicateError naming the missing ones)."""
    with removed_on_failure() as made, transaction.atomic():
        datasets = DatasetsIn(analysis.project, user, made)
        mltask = _copy(source, analysis, user, datasets)
    return mltask, datasets.copied


def _copy(source: MLTask, analysis: Analysis, user, datasets: DatasetsIn) -> MLTask:
    fields = {name: deep.deepcopy(getattr(source, name)) for name in DESIGN_FIELDS}
    fields["split"] = _split_in(fields["split"], datasets)
    if analysis.dataset_id != datasets.mapped(source.analysis.dataset_id):
        fields |= _fitted_to(fields, analysis.dataset)
    mltask = MLTask.objects.create(analysis=analysis, updated_by=user, **fields)
    record_revision(mltask, user, f"Duplicated from ML task {source.pk} (version {source.version}).")
    return mltask


def _split_in(split: dict, datasets: DatasetsIn) -> dict:
    """An explicit test dataset of another project is copied too (a missing one stays as it is:
    the copy's split settings say so, as the source's do)."""
    if split.get("mode") != "explicit":
        return split
    test = Dataset.objects.filter(pk=split.get("test_dataset")).first()
    return split if test is None else split | {"test_dataset": datasets.get(test).pk}


def _fitted_to(fields: dict, dataset: Dataset) -> dict:
    """The design on another dataset: its targets and inputs must be columns there; rejected
    columns it lacks are dropped and the classes are read from its values."""
    from analyses.api import classes_for  # the API's own check of a target against its type

    targets = [{"name": fields["target"], "prediction_type": fields["prediction_type"]}]
    targets += fields["extra_targets"] or []
    names = [t["name"] for t in targets]
    have = {c["name"] for c in dataset.columns}
    inputs = [f["name"] for f in fields["features"] if f.get("role", "input") == "input"]
    missing = [name for name in [*names, *inputs] if name not in have]
    if missing:
        raise DuplicateError(
            f"Dataset {dataset.name!r} lacks the column(s) {', '.join(map(repr, missing))} that the ML task "
            "uses (its targets and inputs); choose an analysis on a dataset that has them.",
            missing_columns=missing,
        )
    target_names = names[0] if len(names) == 1 else names
    features = clean_features([f for f in fields["features"] if f["name"] in have], dataset, target_names)
    refitted = [t | {"classes": classes_for(dataset, t["name"], t["prediction_type"])} for t in targets]
    return {
        "classes": refitted[0]["classes"],
        "extra_targets": refitted[1:],
        "features": features,
        "split": clean_split(fields["split"], {}, dataset, target_names, features),
    }
