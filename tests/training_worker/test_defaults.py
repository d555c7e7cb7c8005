from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from training_worker.defaults import default_architecture_code, default_feature_handling, default_training
from training_worker.usercode import check_output_layer, compile_tab, execute_tab

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_defaults_import_without_tensorflow() -> None:
    probe = (
        "import sys, training_worker.defaults, training_worker.metrics, training_worker.preprocessing; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'django')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_default_training_and_feature_handling() -> None:
    training = default_training()
    assert {k: training[k] for k in ("mode", "epochs", "batch_size", "keep")} == {
        "mode": "standard",
        "epochs": 10,
        "batch_size": 32,
        "keep": "best",
    }
    assert training["early_stopping"] == {"enabled": False, "patience": 5, "min_delta": 0.0}
    assert "def build_sequence(build_train_sequence_with_batch_size" in training["code"]
    assert default_feature_handling("numeric") == {"rescaling": "standard", "missing": "mean"}
    assert default_feature_handling("categorical") == {"encoding": "dummy", "max_levels": 100}
    assert default_feature_handling("text") == {"encoding": "tfidf", "max_features": 200}
    with pytest.raises(ValueError, match="unknown column type"):
        default_feature_handling("audio")


@pytest.mark.parametrize(
    ("prediction_type", "n_classes", "units", "loss"),
    [
        ("regression", 1, 1, "mse"),
        ("binary", 2, 1, "binary_crossentropy"),
        ("multiclass", 4, 4, "sparse_categorical_crossentropy"),
    ],
)
def test_default_architecture_builds_a_compiled_model_of_the_right_shape(
    prediction_type: str, n_classes: int, units: int, loss: str
) -> None:
    import keras

    code = compile_tab(default_architecture_code(prediction_type), "architecture", "build_model")
    namespace = execute_tab(code, "architecture", "build_model", {"keras": keras})
    model = namespace["build_model"]({"main": (5,), "words": (3,)}, n_classes)
    assert [tensor.name for tensor in model.inputs] == ["main", "words"]
    assert model.outputs[0].shape == (None, units)
    check_output_layer(model, prediction_type, n_classes)
    assert namespace["compile_model"](model) is model and model.loss == loss
