"""Load a model for timing and expose one call to time: the engine's own inference call.

.tflite, .onnx and .ort files load through :class:`edgekit.runtime.Model` (file checks, backend
choice), built with :func:`edgekit.profile.latency.timing_settings` (thread count and the
spinning policy), and are then driven through its ``raw`` interpreter or session with inputs
set once; ``edgekit profile`` and ``edgekit benchmark`` both load files here. Whether LiteRT
applied its default XNNPACK delegate is read from the interpreter's execution plan: a delegated graph has a ``DELEGATE`` node (with the default op
resolver, XNNPACK is the only delegate LiteRT applies on its own).
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Mapping
from typing import Callable

import numpy as np

from edgekit.messages import one_line
from edgekit.runtime import Model, RuntimeModelError, TensorInfo
from edgekit.runtime.engines import Spinning

from .latency import SPINNING, Progress, Timed, TimingPlan, interleaved, timing_settings


@dataclass
class Loaded:
    call: Callable[[], object]  # one inference on the prepared inputs
    backend: str
    init_ms: float
    input_shapes: list[tuple[int, ...]]
    xnnpack: bool | None  # None: not a LiteRT/TFLite interpreter, or unknown
    feeds: dict[str, np.ndarray] | None = None  # ONNX inputs by name, for the profiler session
    keep: object = None  # the loaded model, kept alive while timing
    model: Model | None = None  # the runtime's Model of a .tflite/.onnx/.ort file (None for Keras)


_RUNTIME_MODULES = {"tflite": ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"), "onnx": ("onnxruntime",),
                    "ort": ("onnxruntime",)}


def import_runtime(kind: str) -> None:
    """Import the inference engine up front, so that neither the load time nor the memory
    measured for a model includes importing the library (TensorFlow, the last-resort TFLite
    engine, is left to the loader)."""
    for name in _RUNTIME_MODULES.get(kind, ()):
        try:
            importlib.import_module(name)
            return
        except ImportError:
            continue


def input_arrays(inputs: list[TensorInfo], batch: int, seed: int = 0) -> list[np.ndarray]:
    """Random inputs of each tensor's dtype at ``batch`` (a fixed batch must equal it)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for info in inputs:
        shape = list(info.shape)
        if not shape:
            raise RuntimeModelError(f"input {info.name!r} is a scalar; edgekit profile needs batched inputs")
        if shape[0] is None:
            shape[0] = batch
        elif shape[0] != batch:
            raise RuntimeModelError(
                f"--batch {batch}: input {info.name!r} has a fixed batch of {shape[0]} (shape {info.shape}); "
                f"profile it at --batch {shape[0]} or export it with a dynamic batch")
        if any(d is None for d in shape[1:]):
            raise RuntimeModelError(f"input {info.name!r} has dynamic dimensions {info.shape} besides the batch; "
                                    "edgekit profile needs fixed sizes")
        arrays.append(_random(rng, tuple(shape), info.dtype))
    return arrays


def _random(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind in "iu":
        limits = np.iinfo(dtype)
        return rng.integers(max(limits.min, -128), min(limits.max, 127), size=shape, endpoint=True).astype(dtype)
    if dtype.kind == "b":
        return np.zeros(shape, dtype=dtype)
    raise RuntimeModelError(f"edgekit profile cannot make inputs of dtype {dtype}")


def _delegates(raw) -> int | None:
    try:
        return sum(1 for op in raw._get_ops_details() if op.get("op_name") == "DELEGATE")
    except Exception:  # a private API of the interpreter: absent in some versions
        return None


def load_file(path: Path, threads: int, batch: int, spinning: Spinning = SPINNING) -> Loaded:
    """Load a .tflite/.onnx/.ort file with ``timing_settings(threads, spinning)``, inputs prepared at
    ``batch``.

    ``init_ms`` is the load (file checks, interpreter or session creation, tensor allocation
    and any resize to ``batch``), not the making of the random inputs.
    """
    start = time.perf_counter_ns()
    model = Model(path, settings=timing_settings(threads, spinning))
    init_ns = time.perf_counter_ns() - start
    arrays = input_arrays(model.inputs, batch)
    raw = model.raw
    shapes = [a.shape for a in arrays]
    if model.backend == "onnxruntime":  # .onnx and .ort files
        feeds = {info.name: a for info, a in zip(model.inputs, arrays)}
        return Loaded(lambda: raw.run(None, feeds), model.backend, init_ns / 1e6, shapes, None,
                      feeds=feeds, keep=model, model=model)
    details = raw.get_input_details()
    if any(tuple(d["shape"]) != a.shape for d, a in zip(details, arrays)):
        start = time.perf_counter_ns()
        for d, a in zip(details, arrays):
            raw.resize_tensor_input(d["index"], list(a.shape), strict=True)
        raw.allocate_tensors()
        init_ns += time.perf_counter_ns() - start
    for d, a in zip(details, arrays):
        raw.set_tensor(d["index"], a)
    delegates = _delegates(raw)
    return Loaded(raw.invoke, model.backend, init_ns / 1e6, shapes,
                  None if delegates is None else delegates > 0, keep=model, model=model)


def time_files(paths: Mapping[str, Path], threads: int, plan: TimingPlan, progress: Progress | None = None,
               on_load: Callable[[str, Loaded], None] | None = None) -> Timed:
    """Load every file of ``paths`` (key -> path) with :func:`load_file` at ``threads`` and time
    them together (:func:`edgekit.profile.latency.interleaved`): ``edgekit benchmark``'s timing.

    A file that cannot be loaded is in the result's ``errors`` ("cannot load NAME: reason"), as
    one that fails while timed is; the others are still timed. ``on_load(key, loaded)`` sees each
    loaded file before the timing (its backend, its runtime ``Model``).
    """
    loaded, errors = {}, {}
    for key, path in paths.items():
        try:
            loaded[key] = load_file(Path(path), threads, 1)
        except Exception as exc:  # a file the runtime refuses fails alone
            errors[key] = f"cannot load {Path(path).name}: {one_line(exc)}"
            continue
        if on_load is not None:
            on_load(key, loaded[key])
    timed = interleaved({key: lo.call for key, lo in loaded.items()}, plan, progress)
    timed.errors = {**errors, **timed.errors}
    return timed
