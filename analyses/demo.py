"""The demo project: scikit-learn's bundled datasets as CSV, so Train works in the first minute."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.db import transaction

from analyses.datasets import store_dataset
from analyses.models import Membership, Project, Role

DEMO_PROJECT = "Demo"


def _frames():
    from sklearn import datasets

    cancer = datasets.load_breast_cancer(as_frame=True)
    cancer_frame = cancer.frame.copy()
    cancer_frame["target"] = cancer_frame["target"].map(dict(enumerate(cancer.target_names)))
    iris = datasets.load_iris(as_frame=True)
    iris_frame = iris.frame.rename(columns={"target": "species"})
    iris_frame["species"] = iris_frame["species"].map(dict(enumerate(iris.target_names)))
    wine = datasets.load_wine(as_frame=True)
    wine_frame = wine.frame.rename(columns={"target": "cultivar"})
    wine_frame["cultivar"] = wine_frame["cultivar"].map(dict(enumerate(wine.target_names)))
    diabetes = datasets.load_diabetes(as_frame=True, scaled=False)
    diabetes_frame = diabetes.frame.rename(columns={"target": "progression"})
    return {
        "breast_cancer": cancer_frame,
        "diabetes": diabetes_frame,
        "iris": iris_frame,
        "wine": wine_frame,
    }


def load_demo(owner) -> Project | None:
    """Create the demo project with its four datasets, once; returns None when it exists."""
    if Project.objects.filter(name=DEMO_PROJECT, memberships__user=owner).exists():
        return None
    with transaction.atomic():
        project = Project.objects.create(name=DEMO_PROJECT, created_by=owner)
        Membership.objects.create(project=project, user=owner, role=Role.OWNER)
        with tempfile.TemporaryDirectory() as scratch:
            for name, frame in _frames().items():
                path = Path(scratch) / f"{name}.csv"
                frame.to_csv(path, index=False)
                store_dataset(project, path, path.name, name, owner, path.stat().st_size)
    return project
