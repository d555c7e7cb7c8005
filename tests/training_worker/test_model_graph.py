"""The layer graph the runner saves for the model report (training_worker.model_graph), on real
Keras models: multi-input / multi-output with a residual connection, Sequential, subclassed."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from training_worker.model_graph import describe_model  # noqa: E402


def test_a_functional_model_lists_every_layer_and_edge_of_its_topology() -> None:
    main = keras.Input((4,), name="main")
    extra = keras.Input((2,), name="extra")
    hidden = keras.layers.Dense(8, name="hidden")(main)
    deeper = keras.layers.Dense(8, name="deeper")(hidden)
    residual = keras.layers.Add(name="residual")([hidden, deeper])
    joined = keras.layers.Concatenate(name="joined")([residual, extra])
    churn = keras.layers.Dense(1, activation="sigmoid", name="churn")(joined)
    price = keras.layers.Dense(1, name="price")(joined)
    model = keras.Model([main, extra], [churn, price])

    graph = json.loads(json.dumps(describe_model(model)))  # what the runner writes

    assert graph["graph"] is True and graph["kind"] == "functional" and graph["note"] is None
    layers = {layer["name"]: layer for layer in graph["layers"]}
    assert set(layers) == {"main", "extra", "hidden", "deeper", "residual", "joined", "churn", "price"}
    assert layers["hidden"] == {"name": "hidden", "class": "Dense", "output_shape": "(None, 8)", "params": 40}
    assert layers["joined"]["output_shape"] == "(None, 10)"
    assert sorted(map(tuple, graph["edges"])) == sorted(
        [
            ("main", "hidden"),
            ("hidden", "deeper"),
            ("hidden", "residual"),  # the skip connection
            ("deeper", "residual"),
            ("residual", "joined"),
            ("extra", "joined"),
            ("joined", "churn"),
            ("joined", "price"),
        ]
    )
    assert graph["inputs"] == ["main", "extra"] and graph["outputs"] == ["churn", "price"]
    assert graph["params"] == model.count_params() == sum(layer["params"] for layer in graph["layers"])


def test_a_sequential_model_is_a_chain() -> None:
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(3, name="first"), keras.layers.Dense(1, name="second")]
    )
    graph = describe_model(model)
    names = [layer["name"] for layer in graph["layers"]]
    assert graph["graph"] is True and graph["kind"] == "sequential"
    assert names[1:] == ["first", "second"]
    assert graph["edges"] == [[names[0], "first"], ["first", "second"]]


def test_a_subclassed_model_lists_its_layers_and_says_why_there_is_no_graph() -> None:
    class Net(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = keras.layers.Dense(4, name="hidden")
            self.out = keras.layers.Dense(1, name="out")

        def call(self, x):
            return self.out(self.hidden(x))

    model = Net()
    model(np.zeros((2, 3), dtype="float32"))
    graph = describe_model(model)
    assert graph["graph"] is False and graph["kind"] == "subclassed" and graph["edges"] == []
    assert "subclassed" in graph["note"] and "keras.Model(inputs, outputs)" in graph["note"]
    assert [(layer["name"], layer["params"]) for layer in graph["layers"]] == [("hidden", 16), ("out", 5)]
    assert graph["params"] == 21
