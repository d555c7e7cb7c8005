"""The trained model's layers and the graph between them, for the model report.

Written by the runner at save time as ``output/model_graph.json``; the web process only reads it
(it never imports Keras). Functional and Sequential models have a graph (edges from each layer's
inbound nodes, so multi-input, multi-output and residual topologies show); a subclassed model has
none (its ``call`` is Python code Keras cannot see into): its tracked layers are listed and
``note`` says why there is no graph.

Nothing here may fail a session: whatever Keras does not answer is left out, and
:func:`describe_model` returns a note instead of raising.
"""

from __future__ import annotations

from typing import Any

MODEL_GRAPH_FILE = "output/model_graph.json"  # relative to the session's work dir
MAX_LAYERS = 5_000  # far beyond real models; keeps the file (and the page's graph) bounded
MAX_NAME_CHARS = 200


def describe_model(model: Any) -> dict[str, Any]:
    """``{kind, model_class, name, graph, note, layers, edges, inputs, outputs, params, ...}``.

    ``layers``: ``[{name, class, output_shape, params}]`` in Keras' order; ``edges``: ``[[from,
    to], ...]`` by layer name; ``graph``: whether the edges are the model's real topology.
    """
    try:
        description = _describe(model)
    except Exception as exc:  # a model Keras cannot describe still trains and saves
        description = _empty(model, f"The model's layers could not be read ({type(exc).__name__}: {exc}).")
    description.update(_parameter_counts(model))
    return description


def _describe(model: Any) -> dict[str, Any]:
    function = _functional_graph(model)
    if function is not None:
        return _graph_description(model, function)
    layers = list(getattr(model, "layers", []) or [])[:MAX_LAYERS]
    if _is_sequential(model):
        # A Sequential model is a chain even before Keras built its functional graph.
        names = [_name(layer) for layer in layers]
        return _empty(model, None) | {
            "kind": "sequential",
            "graph": True,
            "layers": [_layer_row(layer, None) for layer in layers],
            "edges": [[a, b] for a, b in zip(names, names[1:], strict=False)],
            "inputs": names[:1],
            "outputs": names[-1:],
        }
    return _empty(
        model,
        f"{type(model).__name__} is a subclassed model: its call() is Python code, so Keras knows no "
        "graph of its layers. Only the layers it tracks are listed; build it with keras.Model(inputs, "
        "outputs) (the functional API) to see the graph.",
    ) | {"kind": "subclassed", "layers": [_layer_row(layer, None) for layer in layers]}


def _functional_graph(model: Any) -> Any:
    """The Keras Function holding the graph: the model itself, or a built Sequential's inner one."""
    if _is_sequential(model):
        return getattr(model, "_functional", None)
    if hasattr(model, "_nodes_by_depth") and hasattr(model, "operations"):
        return model
    return None


def _is_sequential(model: Any) -> bool:
    return any(cls.__name__ == "Sequential" for cls in type(model).__mro__)


def _graph_description(model: Any, function: Any) -> dict[str, Any]:
    operations = list(function.operations)[:MAX_LAYERS]
    known = {id(operation) for operation in operations}
    shapes: dict[int, list[str]] = {}
    edges: list[list[str]] = []
    for node in _nodes(function):
        operation = node.operation
        if id(operation) not in known:
            continue
        for tensor in node.output_tensors:
            shapes.setdefault(id(operation), []).append(_shape(getattr(tensor, "shape", None)))
        for parent in node.parent_nodes:
            if id(parent.operation) in known:
                edge = [_name(parent.operation), _name(operation)]
                if edge not in edges:
                    edges.append(edge)
    edges.sort(key=lambda edge: (_position(operations, edge[1]), _position(operations, edge[0])))
    return {
        "kind": "sequential" if _is_sequential(model) else "functional",
        "model_class": type(model).__name__,
        "name": _name(model),
        "graph": True,
        "note": None,
        "layers": [_layer_row(op, shapes.get(id(op))) for op in operations],
        "edges": edges,
        "inputs": [_history_name(tensor) for tensor in function.inputs],
        "outputs": [_history_name(tensor) for tensor in function.outputs],
    }


def _nodes(function: Any) -> list[Any]:
    """The graph's nodes (calls of an operation), deepest first: Keras keeps them by depth."""
    by_depth = function._nodes_by_depth
    return [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]]


def _position(operations: list[Any], name: str) -> int:
    return next((i for i, op in enumerate(operations) if _name(op) == name), len(operations))


def _layer_row(layer: Any, shapes: list[str] | None) -> dict[str, Any]:
    if shapes is None:
        shapes = _called_shapes(layer)
    # One shape per call of the layer: a shared layer called twice has two.
    unique = list(dict.fromkeys(shape for shape in shapes if shape))
    return {
        "name": _name(layer),
        "class": type(layer).__name__,
        "output_shape": ", ".join(unique) if unique else None,
        "params": _count(layer),
    }


def _called_shapes(layer: Any) -> list[str]:
    """Output shapes of a layer outside a graph (a subclassed model's): known once it was called."""
    try:
        return [_shape(t.shape) for node in layer._inbound_nodes for t in node.output_tensors]
    except Exception:  # never called symbolically: Keras has no shape to tell
        return []


def _empty(model: Any, note: str | None) -> dict[str, Any]:
    return {
        "kind": "unknown",
        "model_class": type(model).__name__,
        "name": _name(model),
        "graph": False,
        "note": note,
        "layers": [],
        "edges": [],
        "inputs": [],
        "outputs": [],
    }


def _parameter_counts(model: Any) -> dict[str, int | None]:
    try:
        trainable = sum(int(_size(w)) for w in model.trainable_weights)
        total = int(model.count_params())
    except Exception:  # not built: Keras cannot count what does not exist yet
        return {"params": None, "trainable_params": None, "non_trainable_params": None}
    return {"params": total, "trainable_params": trainable, "non_trainable_params": total - trainable}


def _size(weight: Any) -> int:
    size = 1
    for dimension in weight.shape:
        size *= int(dimension)
    return size


def _count(layer: Any) -> int | None:
    try:
        return int(layer.count_params()) if hasattr(layer, "count_params") else 0
    except Exception:  # an unbuilt layer (ValueError), or an operation with no weights at all
        return None


def _history_name(tensor: Any) -> str:
    history = getattr(tensor, "_keras_history", None)
    return _name(history.operation) if history is not None else "?"


def _name(thing: Any) -> str:
    return str(getattr(thing, "name", "") or type(thing).__name__)[:MAX_NAME_CHARS]


def _shape(shape: Any) -> str:
    if shape is None:
        return ""
    dims = ["None" if d is None else str(d) for d in tuple(shape)]
    return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"
