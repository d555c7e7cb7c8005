"""Feature design through the JSON API, as a script user drives it, on the embedded default:
a wide & deep model on two named inputs (real Titanic data with missing values), a text model
on token sequences, and an image model on digits uploaded as a zip of PNG folders."""

from __future__ import annotations

import pytest

from tests.digits_images import class_folders_zip
from tests.live import Client, embedded_studio
from tests.real_data import titanic, wine_reviews

WIDE_AND_DEEP = """\
def build_model(input_shapes, n_classes):
    wide = keras.Input(shape=input_shapes["wide"], name="wide")
    deep = keras.Input(shape=input_shapes["deep"], name="deep")
    d = keras.layers.Dense(32, activation="relu")(deep)
    d = keras.layers.Dense(16, activation="relu")(d)
    x = keras.layers.Concatenate()([wide, d])
    output = keras.layers.Dense(1, activation="sigmoid", name="prediction")(x)
    return keras.Model(inputs=[wide, deep], outputs=output)


def compile_model(model):
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    return model
"""

TEXT_MODEL = """\
def build_model(input_shapes, n_classes):
    words = keras.Input(shape=input_shapes["tasting_tokens"], name="tasting_tokens", dtype="int32")
    x = keras.layers.Embedding(input_dim=60, output_dim=8)(words)
    x = keras.layers.GlobalAveragePooling1D()(x)
    output = keras.layers.Dense(n_classes, activation="softmax", name="prediction")(x)
    return keras.Model(inputs=words, outputs=output)


def compile_model(model):
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    return model
"""

IMAGE_MODEL = """\
def build_model(input_shapes, n_classes):
    image = keras.Input(shape=input_shapes["image"], name="image")
    x = keras.layers.Conv2D(16, 3, activation="relu", padding="same")(image)
    x = keras.layers.Flatten()(x)
    output = keras.layers.Dense(n_classes, activation="softmax", name="prediction")(x)
    return keras.Model(inputs=image, outputs=output)


def compile_model(model):
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return model
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with embedded_studio(tmp_path_factory.mktemp("design-data")) as studio:
        yield Client(studio.base)


@pytest.fixture(scope="module")
def project(client) -> int:
    return client.call("POST", "/api/projects/", json={"name": "feature design"})["id"]


def design(client, mltask: dict, handling: dict[str, tuple[str, str, dict]], **fields) -> dict:
    """Set role, type, handling and input per column (columns not named are rejected)."""
    features = []
    for feature in mltask["features"]:
        if feature["name"] in handling:
            kind, input_name, options = handling[feature["name"]]
            features.append(
                {**feature, "role": "input", "type": kind, "handling": options, "input": input_name}
            )
        else:
            features.append({**feature, "role": "reject"})
    return client.patch(mltask["id"], features=features, **fields)


def train(client, mltask: int, epochs: int, batch_size: int = 32) -> dict:
    client.patch(mltask, training={"epochs": epochs, "batch_size": batch_size})
    done = client.wait(client.train(mltask), timeout=300)
    assert done["status"] == "succeeded", done["error"]
    return done


def test_wide_and_deep_on_two_named_inputs(client, project):
    dataset = client.upload(project, "titanic.csv", titanic().to_csv(index=False).encode())
    mltask = client.mltask(project, dataset["id"], "survived")
    assert mltask["prediction_type"] == "binary"
    wide = {"encoding": "dummy", "max_levels": 20}
    deep = {"rescaling": "standard", "missing": "median"}
    design(
        client,
        mltask,
        {
            "pclass": ("categorical", "wide", wide),
            "sex": ("categorical", "wide", wide),
            "embarked": ("categorical", "wide", wide),
            "age": ("numeric", "deep", deep),
            "fare": ("numeric", "deep", deep),
            "sibsp": ("numeric", "deep", deep),
            "parch": ("numeric", "deep", deep),
        },
        architecture_code=WIDE_AND_DEEP,
    )

    done = train(client, mltask["id"], epochs=8)

    assert set(done["model"]["input_shapes"]) == {"wide", "deep"}
    assert done["model"]["input_shapes"]["deep"] == [4]
    assert done["final_metrics"]["Test ROC AUC"] >= 0.8


def test_text_model_on_token_sequences(client, project):
    dataset = client.upload(project, "tastings.csv", wine_reviews().to_csv(index=False).encode())
    mltask = client.mltask(project, dataset["id"], "target")
    sequence = {"encoding": "sequence", "vocabulary_size": 60, "sequence_length": 16}
    design(client, mltask, {"tasting": ("text", "tasting_tokens", sequence)}, architecture_code=TEXT_MODEL)

    done = train(client, mltask["id"], epochs=4, batch_size=16)

    assert done["model"]["input_shapes"] == {"tasting_tokens": [16]}
    assert done["model"]["vocabularies"]["tasting_tokens"] <= 60
    assert done["final_metrics"]["Test Accuracy"] >= 0.7  # chance is 0.4


def test_image_model_on_digits_uploaded_as_a_zip(client, project):
    dataset = client.upload(project, "digits.zip", class_folders_zip(limit=600))
    assert {c["name"]: c["type"] for c in dataset["columns"]} == {"image": "image", "label": "categorical"}
    mltask = client.mltask(project, dataset["id"], "label")
    assert mltask["prediction_type"] == "multiclass"
    loader = {"loader": "default", "height": 8, "width": 8, "channels": 1, "scale": True}
    design(client, mltask, {"image": ("image", "image", loader)}, architecture_code=IMAGE_MODEL)

    done = train(client, mltask["id"], epochs=6)

    assert done["model"]["input_shapes"] == {"image": [8, 8, 1]}
    assert done["final_metrics"]["Test Accuracy"] >= 0.8


def test_multi_output_model_reports_metrics_per_target(client, project):
    from tests.live import breast_cancer_csv

    dataset = client.upload(project, "breast_cancer.csv", breast_cancer_csv())
    analysis = client.call("POST", f"/api/projects/{project}/analyses/", json={"dataset": dataset["id"]})
    mltask = client.call(
        "POST",
        f"/api/analyses/{analysis['id']}/mltasks/",
        json={"targets": [{"name": "target"}, {"name": "mean radius"}]},
    )
    assert [(t["name"], t["prediction_type"]) for t in mltask["targets"]] == [
        ("target", "binary"),
        ("mean radius", "regression"),
    ]
    assert "mean radius" not in {f["name"] for f in mltask["features"]}

    done = train(client, mltask["id"], epochs=3)

    for epoch in done["metrics"]:
        assert {"Train ROC AUC (target)", "Test ROC AUC (target)", "Test R2 Score (mean radius)"} <= set(
            epoch["values"]
        )
    assert done["final_metrics"]["Test ROC AUC (target)"] >= 0.9
    assert done["final_metrics"]["Test R2 Score (mean radius)"] > 0.5
