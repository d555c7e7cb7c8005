"""Copying a dataset into another project (duplicating an analysis or ML task there), so that
project is self-contained: removing the source project or dataset takes nothing from the copy.

A stored dataset never changes (column type overrides only touch the row), so its Parquet file
and image folder are hard-linked where the file system allows it, copied otherwise, under the
same layout as an upload (analyses.datasets.store_dataset): ``datasets/%Y/%m/<project>-<name>``
and ``datasets/<id>-images/``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone

from analyses.models import Dataset, Project


class DatasetCopyError(Exception):
    """The dataset cannot be copied (its files are missing from storage); the message says which."""


def copy_dataset(dataset: Dataset, project: Project, user, made: list[Path]) -> Dataset:
    """A new dataset of ``project`` with ``dataset``'s rows, schema and files. Every file or folder
    created is appended to ``made`` first, so the caller can remove them if anything later fails."""
    source = Path(dataset.file.path)
    if not source.is_file():
        raise DatasetCopyError(
            f"The file of dataset {dataset.name!r} is missing from storage; it cannot be copied."
        )
    images = dataset.images_path
    if images is not None and not images.is_dir():
        raise DatasetCopyError(f"The images of dataset {dataset.name!r} are missing from storage ({images}).")
    copy = Dataset(
        project=project,
        name=dataset.name,
        original_filename=dataset.original_filename,
        rows=dataset.rows,
        columns=dataset.columns,
        size_bytes=dataset.size_bytes,
        source=dataset.source,
        created_by=user,
    )
    copy.file.name = _link_file(source, _file_name(dataset, project), made)
    copy.save()
    if images is not None:
        folder = Path(settings.MEDIA_ROOT) / "datasets" / f"{copy.pk}-images"
        made.append(folder)
        shutil.copytree(images, folder, copy_function=_link_or_copy)
        copy.images_dir = folder.relative_to(settings.MEDIA_ROOT).as_posix()
        copy.save(update_fields=["images_dir"])
    return copy


@contextlib.contextmanager
def removed_on_failure() -> Iterator[list[Path]]:
    """Yields a list to note created files and folders in; they are removed if the block fails."""
    made: list[Path] = []
    try:
        yield made
    except BaseException:
        for path in reversed(made):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise


def _file_name(dataset: Dataset, project: Project) -> str:
    """``datasets/<year>/<month>/<project>-<name>.<suffix>``, named as an upload to ``project`` is."""
    base = Path(dataset.file.name).name
    base = re.sub(r"^\d+-", "", base)  # the source project's id
    return timezone.now().strftime("datasets/%Y/%m/") + f"{project.pk}-{base}"


def _link_file(source: Path, name: str, made: list[Path]) -> str:
    """Hard-link (or copy) ``source`` to a free storage name near ``name``; returns the name used."""
    for _ in range(20):  # another upload may take the free name between the check and the link
        name = default_storage.get_available_name(name)
        target = Path(default_storage.path(name))
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            _link_or_copy(source, target)
        except FileExistsError:
            continue
        made.append(target)
        return name
    raise DatasetCopyError(f"No free file name for a copy of {source.name}; try again.")


def _link_or_copy(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """A hard link (no space, no copy time), or a byte copy where links cannot be made; never
    replaces an existing ``target`` (FileExistsError)."""
    try:
        os.link(source, target)
        return
    except FileExistsError:
        raise
    except OSError:  # another file system, or links not allowed
        pass
    with open(source, "rb") as reader, open(target, "xb") as writer:
        shutil.copyfileobj(reader, writer, 1024 * 1024)
