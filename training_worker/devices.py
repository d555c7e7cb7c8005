"""Which devices a session trains on, and the distribution strategy that spans them.

The session's runtime settings (``job["training"]["runtime"]``): ``memory_growth`` (default true:
TensorFlow takes GPU memory as it needs it rather than all of it at start) and ``cpu_devices`` (split
the CPU into that many logical devices: how the multi-device path is tested without GPUs). Which
GPUs the runner sees is the worker's choice (``CUDA_VISIBLE_DEVICES``, one task slot per GPU).

More than one device under the TensorFlow backend → ``tf.distribute.MirroredStrategy``, and the
runner builds and compiles the model inside its scope (why ``compile_model`` is separate from
``build_model``). Other Keras backends (jax, torch) train on their default device.

Called once, before TensorFlow runs anything: device configuration cannot change after that.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any


@dataclass
class Devices:
    """What :func:`configure` found: the devices used and the strategy (None for one device)."""

    backend: str
    names: list[str]
    strategy: Any = None
    deterministic: bool = False

    def scope(self) -> contextlib.AbstractContextManager:
        """The strategy's scope (build and compile the model inside it), or a no-op."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def describe(self) -> str:
        how = f"MirroredStrategy over {len(self.names)} devices" if self.strategy else "one device"
        determinism = ", deterministic ops" if self.deterministic else ""
        return f"Keras backend {self.backend}: {how} ({', '.join(self.names)}){determinism}"


def configure(runtime: dict[str, Any] | None) -> Devices:
    runtime = runtime or {}
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend != "tensorflow":
        return Devices(backend, [f"{backend} default device"])
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if runtime.get("memory_growth", True):
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
    cpu_devices = int(runtime.get("cpu_devices", 1) or 1)
    if not gpus and cpu_devices > 1:
        (cpu,) = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(cpu_devices)]
        )
    names = [device.name for device in tf.config.list_logical_devices("GPU" if gpus else "CPU")]
    deterministic = not gpus  # same seed, code and data -> same metrics (on CPU, at no real cost)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = tf.distribute.MirroredStrategy(names) if len(names) > 1 else None
    return Devices(backend, names, strategy, deterministic)
