"""A runner's work dir: the dataset(s) linked in, their image folders, models it may load, job.json.

Written for a training session (the supervisor) and for a dry run of a design (the Validate
button, ``analyses.validation``); the runner sees nothing else (training_worker.runner's contract).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings

from analyses.models import Dataset, MLTask, Session
from training_worker.dataset_files import dataset_format
from training_worker.trained_models import link_or_copy, link_trained_models

# Rows of the train split a dry run preprocesses: enough for real input shapes in a second or two.
VALIDATION_ROWS = 2_000


def write_workdir(
    workdir: Path,
    mltask: MLTask,
    design: dict[str, Any],
    user: Any,
    session_id: int | None = None,
    validate: bool = False,
) -> dict[str, Any]:
    """Fill ``workdir`` (created if needed) for ``design`` (an ML task's design snapshot) and
    return the job spec written to ``job.json``. ``validate``: a dry run on a sample of the rows."""
    (workdir / "output").mkdir(parents=True, exist_ok=True)
    dataset = mltask.analysis.dataset
    linked, data_format = _link_dataset(Path(dataset.file.path), workdir, "dataset")
    split = dict(design["split"])
    if validate:
        split["sampling"] = {"method": "head", "rows": VALIDATION_ROWS}
    test_dataset = None
    if split.get("mode", "random") == "explicit":
        test_id = split.get("test_dataset")
        test = Dataset.objects.filter(pk=test_id, project_id=dataset.project_id).first()
        if test is None:
            raise ValueError(
                f"the explicit test dataset {test_id} is no longer in the project; "
                "choose another in the split settings"
            )
        test_linked, test_format = _link_dataset(Path(test.file.path), workdir, "test_dataset")
        test_dataset = {
            "path": test_linked.name,
            "format": test_format,
            "id": test.pk,
            "name": test.name,
            **_link_images(test, workdir, "test_images"),  # its own folder: names resolve there
        }
    job = {
        "session_id": session_id,
        "validate": validate,
        "dataset": {"path": linked.name, "format": data_format, **_link_images(dataset, workdir)},
        "target": design["target"],
        "prediction_type": design["prediction_type"],
        "classes": design.get("classes"),
        # Every target, the first being the one above; 2+ for a multi-output model.
        "targets": design.get("targets") or [_first_target(design)],
        "features": design["features"],
        "split": split,
        "test_dataset": test_dataset,
        "architecture_code": design["architecture_code"],
        "preprocessing_code": design.get("preprocessing_code", ""),
        "training": design["training"],
        "metric": design.get("metric"),
        "seed": int(split.get("seed", 1337)),
        "train_metrics_sample": 10_000,
        "variables": design.get("project_variables", {}),  # what get_variable() reads
        "analysis_id": mltask.analysis_id,
        "mltask_id": mltask.pk,
        "trained_models": link_trained_models(user, workdir, exclude_session=session_id),
    }
    if design.get("resume"):
        job["resume"] = _link_resumed_models(design["resume"], workdir)
    (workdir / "job.json").write_text(json.dumps(job, indent=1))
    return job


def _link_resumed_models(resume: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """The continued session's models: its last epoch's (to go on from) and its kept one."""
    source = Session.objects.get(pk=resume["session_id"])
    artifacts = source.artifacts or {}
    folder = workdir / "resume"
    folder.mkdir(exist_ok=True)
    for name, artifact in (
        ("last.keras", artifacts.get("last_model") or artifacts["model"]),
        ("best.keras", artifacts["model"]),
    ):
        path = Path(settings.DATA_DIR) / artifact
        if not path.is_file():
            raise ValueError(f"the model of session {source.pk} is missing from storage ({path})")
        link_or_copy(path, folder / name)
    return {
        "session_id": source.pk,
        "epochs_done": int(resume["epochs_done"]),
        "model": "resume/last.keras",
        "best_model": "resume/best.keras",
        "kept": (source.model_info or {}).get("kept"),
    }


def _first_target(design: dict) -> dict:
    """A design saved before multi-output: its one target."""
    return {
        "name": design["target"],
        "prediction_type": design["prediction_type"],
        "classes": design.get("classes"),
    }


def _link_images(dataset: Dataset, workdir: Path, name: str = "images") -> dict[str, str]:
    """An image dataset's folder, as a symlink ``name`` in the work dir: ``{"images": name}``; {} if none.

    A link, not a copy: the runner only reads the images (a preprocess_image writing there would
    change the dataset; the sandbox does not prevent it).
    """
    folder = dataset.images_path
    if folder is None:
        return {}
    if not folder.is_dir():
        raise ValueError(f"the images of dataset {dataset.name!r} are missing from storage ({folder})")
    (workdir / name).symlink_to(folder.resolve(), target_is_directory=True)
    return {"images": name}


def _link_dataset(source: Path, workdir: Path, stem: str) -> tuple[Path, str]:
    data_format = dataset_format(source)  # datasets stored before the Parquet conversion are CSV
    linked = workdir / f"{stem}.{data_format}"
    try:
        os.link(source, linked)  # same file system: no copy of a big file
    except OSError:
        shutil.copyfile(source, linked)
    return linked, data_format
