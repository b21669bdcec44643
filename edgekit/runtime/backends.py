"""Thin adapters over the inference engines: LiteRT / tflite_runtime / tf.lite and ONNX Runtime
(which opens .onnx and ORT format .ort files alike).

Each adapter exposes ``inputs`` and ``outputs`` (:class:`TensorInfo` in the engine's own order),
``run(arrays) -> list of arrays`` for arrays already in the tensors' dtypes, and ``raw`` (the
interpreter or session, built by :mod:`.engines` from an :class:`~.engines.EngineSettings`).
Engines are imported when a model is loaded, never at import time; TensorFlow only when neither
LiteRT nor tflite_runtime is installed (or when asked for).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.messages import first_line

from . import engines
from .engines import EngineSettings
from .errors import RuntimeModelError

TFLITE_BACKENDS = engines.TFLITE_ENGINES
ONNX_BACKENDS = ("onnxruntime",)
BACKENDS = {"tflite": TFLITE_BACKENDS, "onnx": ONNX_BACKENDS, "ort": ONNX_BACKENDS}
ALL_BACKENDS = ("auto", *TFLITE_BACKENDS, *ONNX_BACKENDS)

_ONNX_DTYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16, "tensor(int32)": np.int32, "tensor(uint32)": np.uint32,
    "tensor(int64)": np.int64, "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}  # fmt: skip


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization of a tensor: real = scale * (q - zero_point)."""

    scale: float
    zero_point: int


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output. ``shape`` has None for dynamic dimensions (often the batch)."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype
    quantization: QuantParams | None = None


def check_backend(backend: str, fmt: str) -> tuple[str, ...]:
    """The backends to try, in order, for ``backend`` on a file of format ``fmt``."""
    if backend not in ALL_BACKENDS:
        raise RuntimeModelError(f"backend got {backend!r}; expected one of {', '.join(ALL_BACKENDS)}")
    valid = BACKENDS[fmt]
    if backend == "auto":
        return valid
    if backend not in valid:
        raise RuntimeModelError(
            f"backend {backend!r} cannot run .{fmt} files; expected auto or one of {', '.join(valid)}"
        )
    return (backend,)


def load(path: Path, fmt: str, backend: str, settings: EngineSettings):
    """Load ``path`` with the first installed backend among those ``backend`` allows."""
    candidates = check_backend(backend, fmt)
    for name in candidates:
        factory = _import_backend(name)
        if factory is not None:
            try:
                return factory(path, settings)
            except RuntimeModelError:
                raise
            except Exception as exc:  # native loaders raise RuntimeError, ValueError, Fail, ...
                raise RuntimeModelError(f"{name} could not load {str(path)!r}: {first_line(exc)}") from exc
    raise RuntimeModelError(f"no backend for .{fmt} files is installed; install one of {', '.join(candidates)}")


def _import_backend(name: str):
    if name in ONNX_BACKENDS:
        ort = engines.onnxruntime_module()
        return None if ort is None else lambda path, settings: OnnxBackend(path, settings, ort)
    interpreter_cls = engines.tflite_interpreter_class(name)
    if interpreter_cls is None:
        return None
    return lambda path, settings: TfliteBackend(path, settings, interpreter_cls, name)


def _tflite_info(detail: dict, name: str) -> TensorInfo:
    signature = detail.get("shape_signature")
    dims = signature if signature is not None and len(signature) else detail["shape"]
    scale, zero_point = detail.get("quantization", (0.0, 0))
    quant = QuantParams(float(scale), int(zero_point)) if scale else None
    shape = tuple(None if int(d) < 0 else int(d) for d in dims)
    return TensorInfo(name, shape, np.dtype(detail["dtype"]), quant)


class TfliteBackend:
    """A TFLite interpreter behind a lock: set_tensor/invoke/get_tensor are not reentrant."""

    def __init__(self, path: Path, settings: EngineSettings, interpreter_cls, name: str) -> None:
        self.name = name
        self.raw = engines.tflite_interpreter(path, settings, interpreter_cls)
        self.raw.allocate_tensors()
        in_details, out_details = self.raw.get_input_details(), self.raw.get_output_details()
        in_names, out_names = self._signature_names(in_details, out_details)
        self.inputs = [_tflite_info(d, n) for d, n in zip(in_details, in_names)]
        self.outputs = [_tflite_info(d, n) for d, n in zip(out_details, out_names)]
        self._in_index = [d["index"] for d in in_details]
        self._out_index = [d["index"] for d in out_details]
        self._shapes = [tuple(int(v) for v in d["shape"]) for d in in_details]
        self._lock = threading.Lock()

    def _signature_names(self, in_details: list, out_details: list) -> tuple[list[str], list[str]]:
        """The single signature's names ('image' rather than 'serving_default_image:0') when
        they cover every input and output, so that a .tflite and its .onnx twin agree; else the
        tensor names."""
        tensor_names = [d["name"] for d in in_details], [d["name"] for d in out_details]
        try:
            signatures = self.raw.get_signature_list()
            if len(signatures) != 1:
                return tensor_names
            runner = self.raw.get_signature_runner(next(iter(signatures)))
            by_index = [{d["index"]: k for k, d in runner.get_input_details().items()},
                        {d["index"]: k for k, d in runner.get_output_details().items()}]  # fmt: skip
        except Exception:  # older interpreters lack signatures; names are a nicety
            return tensor_names
        names = [[table.get(d["index"]) for d in ds] for table, ds in zip(by_index, (in_details, out_details))]
        if any(None in group or len(set(group)) != len(group) for group in names):
            return tensor_names
        return names[0], names[1]

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        raw = self.raw
        with self._lock:
            if any(a.shape != s for a, s in zip(arrays, self._shapes)):
                self._resize([a.shape for a in arrays])
            for index, array in zip(self._in_index, arrays):
                raw.set_tensor(index, array)
            raw.invoke()
            return [raw.get_tensor(index) for index in self._out_index]  # get_tensor copies

    def _resize(self, shapes: list[tuple[int, ...]]) -> None:
        for index, shape in zip(self._in_index, shapes):
            self.raw.resize_tensor_input(index, list(shape), strict=False)
        self.raw.allocate_tensors()
        self._shapes = list(shapes)


class OnnxBackend:
    """An ONNX Runtime CPU session; ``InferenceSession.run`` is thread-safe, so no lock."""

    name = "onnxruntime"

    def __init__(self, path: Path, settings: EngineSettings, ort) -> None:
        self.raw = engines.onnx_session(path, settings, ort)
        self.inputs = [self._info(node) for node in self.raw.get_inputs()]
        self.outputs = [self._info(node) for node in self.raw.get_outputs()]
        self._in_names = [t.name for t in self.inputs]
        self._out_names = [t.name for t in self.outputs]

    @staticmethod
    def _info(node) -> TensorInfo:
        if node.type not in _ONNX_DTYPES:
            raise RuntimeModelError(f"tensor {node.name!r} has type {node.type!r}, which edgekit cannot feed or read")
        shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (node.shape or ()))
        return TensorInfo(node.name, shape, np.dtype(_ONNX_DTYPES[node.type]))

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return self.raw.run(self._out_names, dict(zip(self._in_names, arrays)))
