"""What produced a trained model, as only the runner knows it: library versions and devices.

Written by the runner at save time as ``output/provenance.json``; the model report adds what the
database knows (code, settings, dataset, seed). Importable without TensorFlow: versions come from
modules already imported, else from the installed distributions' metadata.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from typing import Any

PROVENANCE_FILE = "output/provenance.json"  # relative to the session's work dir
# Report name -> (module, distributions that may provide it), in the order shown.
LIBRARIES = {
    "keras": ("keras", ("keras",)),
    "tensorflow": ("tensorflow", ("tensorflow", "tensorflow-cpu", "tensorflow-gpu")),
    "numpy": ("numpy", ("numpy",)),
    "scikit-learn": ("sklearn", ("scikit-learn",)),
    "pandas": ("pandas", ("pandas",)),
    "jax": ("jax", ("jax",)),
    "torch": ("torch", ("torch",)),
}
OPTIONAL = ("jax", "torch")  # listed only when installed: other Keras backends


def library_versions() -> dict[str, str | None]:
    """``{"python": "3.11.2", "keras": "3.15.1", ...}``; None for a required library not installed."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name, (module, distributions) in LIBRARIES.items():
        version = _version(module, distributions)
        if version is not None or name not in OPTIONAL:
            versions[name] = version
    return versions


def _version(module: str, distributions: tuple[str, ...]) -> str | None:
    imported = sys.modules.get(module)
    version = getattr(imported, "__version__", None)
    if isinstance(version, str):
        return version
    for distribution in distributions:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def describe_environment(devices: Any, seed: int) -> dict[str, Any]:
    """Versions, the device description the console printed, and the accelerators' names."""
    return {
        "versions": library_versions(),
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
        "device": devices.describe() if devices is not None else None,
        "backend": getattr(devices, "backend", None),
        "devices": list(getattr(devices, "names", None) or []),
        "accelerators": _accelerators(),
        "seed": seed,
    }


def _accelerators() -> list[str]:
    """GPU model names ("NVIDIA H200"), as TensorFlow reports them; [] on CPU or another backend."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return []
    try:
        gpus = tf.config.list_physical_devices("GPU")
        return [
            str(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)) for gpu in gpus
        ]
    except Exception:  # details are informative only; never fail a save for them
        return []
