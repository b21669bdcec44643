"""``Model``: load a .tflite, .onnx or .ort file and run it on float inputs.

A thin layer that keeps the interpreter's meaning (names, shapes, dtypes and quantization
parameters come from the file) and adds what every caller otherwise rewrites: quantizing float
inputs and dequantizing outputs with the file's own scale and zero point, batches of any size,
the edgekit preprocessing from the file's metadata, top-k classification, thread safety, and
one-line errors (:class:`RuntimeModelError`) instead of native crashes.

Imports numpy and the inference backend only (see :mod:`edgekit.runtime.backends`).
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgekit.messages import first_line, one_line

from . import backends, std_metadata
from .backends import TensorInfo
from .engines import EngineSettings, for_target
from .errors import RuntimeModelError
from .files import open_model_file
from .metadata import parse_metadata
from .preprocess import preprocess as _preprocess
from .spec import ModelMetadata


def _clip_ufunc():
    """The ufunc behind ``np.clip``. np.clip reaches it through three Python frames, which cost
    ~40 us per predict when run with caches cold after an invoke (benchmarks/
    runtime_predict_overhead.py); falls back to np.clip where numpy moves it."""
    for module in ("numpy._core.umath", "numpy.core.umath"):  # numpy 2, numpy 1
        try:
            return importlib.import_module(module).clip
        except (ImportError, AttributeError):
            continue
    return np.clip


_clip = _clip_ufunc()


class _Input:
    """Precomputed checks and conversion of caller data into one input tensor."""

    def __init__(self, info: TensorInfo) -> None:
        self.info = info
        self.dtype = info.dtype
        self.rank = len(info.shape)
        self.fixed = [(axis, dim) for axis, dim in enumerate(info.shape) if dim is not None]
        self.quant = info.quantization if info.dtype.kind in "iu" else None
        self.wants_float = self.quant is not None or info.dtype.kind == "f"
        if self.quant is not None:
            limits = np.iinfo(info.dtype)
            self.scale = np.float32(self.quant.scale)
            self.zero_point = np.float32(self.quant.zero_point)
            self.qmin, self.qmax = np.float32(limits.min), np.float32(limits.max)
        # Quantization scratch, one pair per thread: predict runs outside the engine's lock and
        # several threads may share a Model.
        self._scratch = threading.local()

    def convert(self, value) -> np.ndarray:
        array = value if isinstance(value, np.ndarray) else np.asarray(value)
        if self.quant is not None and array.dtype == self.dtype:  # already quantized: fed as is
            self._check_shape(array)
            return array if array.flags.c_contiguous else np.ascontiguousarray(array)
        self._check(array)
        if self.quant is not None:
            return self._quantize(array)
        if array.dtype != self.dtype:
            array = array.astype(self.dtype)
        return array if array.flags.c_contiguous else np.ascontiguousarray(array)

    def _quantize(self, array: np.ndarray) -> np.ndarray:
        """q = clip(rint(x / scale + zero_point)) in this thread's reused buffers (no allocation;
        the returned array is overwritten by this thread's next call, after the engine copied
        it). A true divide, as documented: multiplying by 1/scale is ~10 us faster on a
        224x224x3 input but rounds about one value in a million differently."""
        work, out = self._buffers(array.shape)
        np.divide(array, self.scale, out=work, dtype=np.float32)
        if self.zero_point:
            np.add(work, self.zero_point, out=work)
        np.rint(work, out=work)
        _clip(work, self.qmin, self.qmax, out=work)
        np.copyto(out, work, casting="unsafe")
        return out

    def _buffers(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        pair = getattr(self._scratch, "pair", None)
        if pair is None or pair[0].shape != shape:  # only the last shape is kept
            pair = self._scratch.pair = (np.empty(shape, np.float32), np.empty(shape, self.dtype))
        return pair

    def _check(self, array: np.ndarray) -> None:
        name = self.info.name
        if self.wants_float and array.dtype.kind != "f":
            what = "quantized (%s) " % self.dtype if self.quant is not None else ""
            already = f", or {self.dtype} values already quantized" if self.quant is not None else ""
            raise RuntimeModelError(
                f"input {name!r} got dtype {array.dtype}; expected floating point values for this "
                f"{what}{self.dtype} input, prepared as the model expects (see Model.preprocess){already}"
            )
        if not self.wants_float and not np.can_cast(array.dtype, self.dtype, "same_kind"):
            raise RuntimeModelError(f"input {name!r} got dtype {array.dtype}; expected {self.dtype}")
        self._check_shape(array)

    def _check_shape(self, array: np.ndarray) -> None:
        if not self._shape_ok(array.shape):
            raise RuntimeModelError(
                f"input {self.info.name!r} got shape {array.shape}; expected {self.info.shape}"
            )

    def _shape_ok(self, shape: tuple[int, ...]) -> bool:
        if len(shape) != self.rank or (shape and shape[0] < 1):
            return False
        # A fixed batch dimension also accepts multiples of itself: predict loops over chunks.
        return all(shape[0] % dim == 0 if axis == 0 and dim > 0 else shape[axis] == dim for axis, dim in self.fixed)


class Model:
    """A .tflite, .onnx or .ort model ready to run on the CPU.

    ``Model(path, threads=None, backend="auto", settings=None)``: backend "auto" picks LiteRT,
    then tflite_runtime, then tf.lite for .tflite files and onnxruntime for .onnx and .ort files.
    ``settings`` (:class:`~edgekit.runtime.engines.EngineSettings`) says how the engine is
    built (kept as ``settings``; an .onnx or .ort file made for a device target runs with that
    target's int8 arithmetic unless ``settings`` chooses, see
    :func:`~edgekit.runtime.engines.for_target`); ``threads`` alone is short for
    ``EngineSettings(threads=threads)``, and passing both is refused.
    ``inputs``/``outputs`` describe the tensors; ``metadata`` is the file's edgekit metadata,
    else the equivalent of its standard TFLite Model Metadata (labels and normalisation written
    by TFLite Support or MediaPipe tools, see :mod:`std_metadata`), else None; ``raw`` is the
    underlying interpreter or session, for anything not wrapped here.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, backend: str = "auto",
                 settings: EngineSettings | None = None) -> None:
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise RuntimeModelError(f"threads got {threads!r}; expected None or a positive integer")
        if settings is None:
            settings = EngineSettings(threads=threads)
        elif not isinstance(settings, EngineSettings):
            raise RuntimeModelError(f"settings got {settings!r}; expected an EngineSettings")
        elif threads is not None:
            raise RuntimeModelError(f"threads got {threads!r} and settings {settings!r}; "
                                    "pass the thread count inside settings")
        checked = open_model_file(path)  # before any native code sees the file
        self.path = Path(path)
        self.format = checked.format
        self.metadata: ModelMetadata | None = parse_metadata(path, checked.metadata_json)
        self.settings = settings = for_target(settings, checked.format, self.metadata and self.metadata.target_arch)
        self._engine = backends.load(self.path, checked.format, backend, settings)
        self.backend: str = self._engine.name
        self.raw = self._engine.raw
        self.inputs: list[TensorInfo] = list(self._engine.inputs)
        self.outputs: list[TensorInfo] = list(self._engine.outputs)
        if self.metadata is None and checked.standard_metadata is not None:  # edgekit's entry wins
            standard = std_metadata.parse_or_refuse(path, checked.standard_metadata)
            self.metadata = std_metadata.to_model_metadata(path, standard, self.inputs, self.outputs)
        self._slots = [_Input(info) for info in self.inputs]
        self._by_name = {slot.info.name: slot for slot in self._slots}
        self._out_quant = [
            (np.float32(t.quantization.scale), np.float32(t.quantization.zero_point))
            if t.quantization is not None and t.dtype.kind in "iu" else None
            for t in self.outputs
        ]  # fmt: skip
        self._out_names = [t.name for t in self.outputs]
        # Fixed (non-None) batch sizes force a loop over chunks; dynamic ones resize instead.
        self._fixed_batch = {s.info.shape[0] for s in self._slots if s.rank and s.info.shape[0] is not None}

    def __repr__(self) -> str:
        def fmt(ts: list[TensorInfo]) -> str:
            return ", ".join(f"{t.name}{list(t.shape)}:{t.dtype}" for t in ts)

        return (
            f"Model({str(self.path)!r}, backend={self.backend!r}, "
            f"inputs=[{fmt(self.inputs)}], outputs=[{fmt(self.outputs)}])"
        )

    # -- inference -------------------------------------------------------------------------

    def predict(self, x):
        """Run the model on float inputs prepared as it expects (see :meth:`preprocess`).

        ``x``: one array for a single-input model, a list/tuple with one array per input (in
        ``inputs`` order), or a dict keyed by input name. The leading axis is the batch; any
        batch size works. Float values for a quantized (int8/uint8) input are quantized with the
        file's scale and zero point, ``clip(rint(x / scale + zero_point))``; an array already in
        that input's dtype (int8 for an int8 input) is taken as quantized and fed unchanged.
        Quantized outputs come back dequantized to float32. Returns one array for a
        single-output model, else a dict output name -> array.
        """
        arrays = [slot.convert(value) for slot, value in zip(self._slots, self._bind(x))]
        raw = self._run_batched(arrays)
        outs = [r if q is None else _dequantize(r, *q) for r, q in zip(raw, self._out_quant)]
        return outs[0] if len(outs) == 1 else dict(zip(self._out_names, outs))

    def _bind(self, x) -> list:
        n = len(self._slots)
        if n == 1 and isinstance(x, np.ndarray):  # the common call, checked first: predict is hot
            return [x]
        has = f"the model has {n} input{'s' if n != 1 else ''} ({', '.join(self._by_name)})"
        if isinstance(x, Mapping):
            given, wanted = {str(k) for k in x}, set(self._by_name)
            if given != wanted or len(x) != n:
                raise RuntimeModelError(
                    f"inputs got names {sorted(given)}; expected {sorted(wanted)} "
                    f"(missing {sorted(wanted - given)}, unknown {sorted(given - wanted)})"
                )
            return [x[slot.info.name] for slot in self._slots]
        if isinstance(x, (list, tuple)):
            if len(x) != n:
                raise RuntimeModelError(f"got {len(x)} input arrays; {has}")
            return list(x)
        if n != 1:
            raise RuntimeModelError(f"got 1 input array; {has}; pass a list or a dict")
        return [x]

    def _run_batched(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        fixed = self._fixed_batch
        batches = {a.shape[0] for a in arrays if a.ndim}
        if not fixed or batches <= fixed:
            return self._run(arrays)
        # A file with a fixed batch (say 1) runs a larger batch chunk by chunk.
        if len(fixed) != 1 or len(batches) != 1:
            raise RuntimeModelError(
                f"inputs got batch sizes {sorted(batches)}; this model's inputs need one batch size, "
                f"a multiple of {sorted(fixed)}"
            )
        (step,), (total,) = fixed, batches
        parts = [self._run([a[i : i + step] for a in arrays]) for i in range(0, total, step)]
        return [np.concatenate(group) for group in zip(*parts)]

    def _run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        try:
            return self._engine.run(arrays)
        except Exception as exc:  # e.g. a resize the graph cannot take; native errors vary by engine
            first = first_line(exc)
            shapes = ", ".join(str(a.shape) for a in arrays)
            raise RuntimeModelError(f"{self.backend} failed on inputs of shape {shapes}: {first}") from exc

    # -- images ----------------------------------------------------------------------------

    def _require_metadata(self, what: str) -> ModelMetadata:
        if self.metadata is None:
            raise RuntimeModelError(
                f"{str(self.path)!r} has no edgekit metadata, so {what} does not know how to prepare images; "
                "use predict with prepared inputs"
            )
        return self.metadata

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """uint8 image (H, W) or (H, W, C) -> float32 input for one sample, per the file's metadata
        (HWC, or CHW for an NCHW-layout file); add a batch axis before :meth:`predict`."""
        meta = self._require_metadata("preprocess")
        x = _preprocess(image, meta.preprocess)
        return np.ascontiguousarray(x.transpose(2, 0, 1)) if meta.layout.upper() == "NCHW" else x

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """One image as this file's input, for one sample (add a batch axis before :meth:`predict`).

        A uint8 frame that already has the input's size and channels, for a file whose input
        is raw uint8 pixels (the default int8 export: scale 1, zero point 0, no normalisation),
        is returned as it is: a camera frame goes in with no float conversion at all. Anything
        else goes through :meth:`preprocess` (float32; predict quantizes it).
        """
        if self._takes_frames(image):
            return image if image.ndim == 3 else image[..., None]
        return self.preprocess(image)

    def _takes_frames(self, image) -> bool:
        meta, slot = self.metadata, self._slots[0] if len(self._slots) == 1 else None
        if meta is None or slot is None or slot.dtype != np.uint8 or slot.quant is None:
            return False
        spec = meta.preprocess
        identity = set(spec.mean) == {0.0} and set(spec.std) == {1.0} and meta.layout == "NHWC"
        plain = slot.scale == 1 and slot.zero_point == 0
        shape = (*spec.size, spec.channels)
        return (identity and plain and isinstance(image, np.ndarray) and image.dtype == np.uint8
                and (image.shape == shape or (spec.channels == 1 and image.shape == shape[:2])))

    @property
    def is_embedding(self) -> bool:
        """True for a file exported with ``--embedding``: its output is a feature vector."""
        return bool(self.metadata and self.metadata.extra.get("output") == "embedding")

    def _single_image_io(self, what: str) -> ModelMetadata:
        meta = self._require_metadata(what)
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise RuntimeModelError(
                f"{what} needs one input and one output; the model has {len(self.inputs)} and {len(self.outputs)}"
            )
        return meta

    def classify(self, image, top_k: int = 5) -> list[tuple[str, float]]:
        """Top-k (label, probability) for one image: a uint8 numpy array or an image file path.

        The image is prepared with :meth:`prepare` and scored with :meth:`rank`.
        """
        _check_top_k(top_k)
        meta = self._single_image_io("classify")
        if self.is_embedding:
            raise RuntimeModelError(f"{str(self.path)!r} is an embedding model (no class scores); use embed")
        if isinstance(image, (str, os.PathLike)):
            image = load_image(image, meta.preprocess.channels)
        scores = self.predict(self.prepare(image)[None])
        return [(label, probability) for _, label, probability in self.rank(scores, top_k)]

    def embed(self, image) -> np.ndarray:
        """The output vector (float32) for one image, a uint8 array or an image file path: the
        features of an ``--embedding`` export (compare them with cosine similarity)."""
        meta = self._single_image_io("embed")
        if isinstance(image, (str, os.PathLike)):
            image = load_image(image, meta.preprocess.channels)
        return np.asarray(self.predict(self.prepare(image)[None]), dtype=np.float32).reshape(-1)

    def rank(self, scores, top_k: int = 5) -> list[tuple[int, str, float]]:
        """Top-k (class index, label, probability) of one sample's output scores, best first.

        ``scores``: the output of :meth:`predict` for one sample, shape (classes,) or
        (1, classes). Softmax is applied unless the scores already are probabilities
        (non-negative, summing to 1). Labels are the metadata's class names, or the class index
        as text when the file has no metadata or no class names. Ties keep index order.
        """
        _check_top_k(top_k)
        if len(self.outputs) != 1:
            raise RuntimeModelError(f"rank needs a model with one output; the model has {len(self.outputs)}")
        array = np.asarray(scores, dtype=np.float64)
        if array.ndim == 0 or array.size == 0 or (array.ndim > 1 and array.size != array.shape[-1]):
            raise RuntimeModelError(
                f"scores got shape {array.shape}; expected one sample's scores, (classes,) or (1, classes)"
            )
        scores = array.reshape(-1)
        probs = scores if self._is_probability(scores) else _softmax(scores)
        names = (self.metadata.class_names if self.metadata else ()) or tuple(str(i) for i in range(len(probs)))
        if len(names) != len(probs):
            raise RuntimeModelError(
                f"the metadata lists {len(names)} class names but the model outputs {len(probs)} scores"
            )
        order = np.argsort(-probs, kind="stable")[:top_k]
        return [(int(i), names[i], float(probs[i])) for i in order]

    def _is_probability(self, scores: np.ndarray) -> bool:
        q = self._out_quant[0]
        # Dequantized probabilities are each off by up to half a step.
        tolerance = 1e-3 + (len(scores) * float(q[0]) / 2 if q is not None else 0.0)
        return bool(scores.min() >= -tolerance and abs(scores.sum() - 1.0) <= tolerance)


def _check_top_k(top_k) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise RuntimeModelError(f"top_k got {top_k!r}; expected a positive integer")


def _dequantize(q: np.ndarray, scale: np.float32, zero_point: np.float32) -> np.ndarray:
    real = q.astype(np.float32)  # (q - zero_point) * scale, in place after the one copy
    real -= zero_point
    real *= scale
    return real


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def load_image(path: str | os.PathLike, channels: int = 3) -> np.ndarray:
    """Read an image file as uint8 (H, W, 3), or (H, W, 1) for a grayscale file and channels=1.

    Needs Pillow, imported here only, so that the runtime runs without it on array inputs.
    """
    try:
        from PIL import Image
    except ImportError:
        raise RuntimeModelError("reading image files needs Pillow; pass a uint8 numpy array instead") from None
    if not Path(path).is_file():
        raise RuntimeModelError(f"image file {str(path)!r} does not exist")
    try:
        with Image.open(path) as img:  # refuses a header claiming > 2 * MAX_IMAGE_PIXELS before decoding
            if img.mode.startswith("I"):  # 16-bit grey: its high byte, as libpng (and so training) reads it
                grey = np.clip(np.asarray(img, dtype=np.int64) >> 8, 0, 255).astype(np.uint8)
                return grey if channels == 1 else np.repeat(grey[..., None], 3, axis=-1)
            keep_gray = channels == 1 and img.mode == "L"
            return np.asarray(img if keep_gray else img.convert("RGB"), dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - corrupt files raise anything (OSError, SyntaxError, bomb errors, ...)
        why = one_line(exc)
        raise RuntimeModelError(f"cannot read image {str(path)!r}: {why}") from None


__all__ = ["Model", "load_image"]
