"""The preprocessing and metadata contract that travels inside every exported file.

An edgekit model file (.tflite or .onnx) carries one JSON document (RFC 8259) under the key
``edgekit``: in the TFLite flatbuffer's ``metadata`` table (name ``edgekit``, pointing at a
buffer of UTF-8 JSON) and in ONNX ``ModelProto.metadata_props``. The runtime needs nothing
beside the file to prepare an image exactly as training did.

Pixel convention: images are HxWxC uint8 (0..255), resized to ``size`` with ``resize`` and
then mapped to the model's input by ``x = (pixel - mean) / std`` per channel, in float32.

The document is read from files that may come from anywhere, so reading is strict: every field
must have its JSON type (no ``"3"`` for 3, no ``true`` for 1, no ``null`` for a string) and
any problem is a ValueError naming the field and the value received. Whatever the constructors
accept, ``to_json`` writes and ``from_json`` reads back equal (a round trip is exact): sizes and
channels are stored as ``int``, mean and std as ``float``, and ``extra`` as the JSON values it
will be read back as (tuples become lists, keys must be strings).

This module imports numpy and the standard library only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from numbers import Integral, Real
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
METADATA_KEY = "edgekit"
RESIZE_METHODS = ("bilinear", "nearest")
LAYOUTS = ("NHWC", "NCHW")
MAX_SIDE = 1 << 16  # pixels per side of a model input: far above any CNN, far below a memory blow-up
_SHOWN = 120  # characters of a received value quoted in an error message
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _show(value: Any) -> str:
    """repr of ``value`` cut to one short line: error messages quote what they got, and a
    metadata document from an unknown file can be megabytes long."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _is_integer(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)  # numpy integers too


def _integer(value: Any, label: str) -> int:
    if not _is_integer(value):
        raise ValueError(f"{label} got {_show(value)}; expected an integer")
    return int(value)


def _sequence(values: Any, label: str, expected: str) -> tuple:
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise ValueError(f"{label} got {_show(values)}; expected {expected}")
    return tuple(values)


def _float32_reals(values: Any, label: str) -> tuple[float, ...]:
    """Plain floats, each finite in float32 (both preprocessing implementations compute in it)."""
    out = []
    for v in _sequence(values, label, "a list of numbers"):
        if isinstance(v, bool) or not isinstance(v, Real):
            raise ValueError(f"{label} got {_show(values)}; expected a list of numbers")
        try:
            number = float(v)
        except OverflowError:  # an int too large for any float
            number = math.inf
        if not abs(number) <= _FLOAT32_MAX:  # also catches nan
            raise ValueError(f"{label} got {_show(values)}; values must be finite float32 numbers")
        out.append(number)
    return tuple(out)


def _json_value(value: Any, label: str) -> Any:
    """``value`` as it reads back from JSON; ValueError if JSON cannot hold it."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{label} got {_show(value)}; expected JSON values (finite numbers): {exc}") from None


@dataclass(frozen=True)
class PreprocessSpec:
    """How raw uint8 pixels become model input; defined once, implemented in tf.data and numpy."""

    size: tuple[int, int]  # (height, width)
    channels: int = 3  # 1 (grayscale) or 3 (RGB)
    mean: tuple[float, ...] = (127.5,)  # per channel, or one value for all channels
    std: tuple[float, ...] = (127.5,)
    resize: str = "bilinear"

    def __post_init__(self) -> None:
        size = _sequence(self.size, "size", "(height, width)")
        if len(size) != 2 or not all(_is_integer(v) and 1 <= v <= MAX_SIDE for v in size):
            raise ValueError(
                f"size got {_show(self.size)}; expected (height, width), two integers from 1 to {MAX_SIDE}")
        size = tuple(int(v) for v in size)
        channels = _integer(self.channels, "channels")
        if channels not in (1, 3):
            raise ValueError(f"channels got {_show(self.channels)}; expected 1 or 3")
        if not isinstance(self.resize, str) or self.resize not in RESIZE_METHODS:
            raise ValueError(f"resize got {_show(self.resize)}; expected one of {', '.join(RESIZE_METHODS)}")
        mean, std = _float32_reals(self.mean, "mean"), _float32_reals(self.std, "std")
        for label, values in (("mean", mean), ("std", std)):
            if len(values) not in (1, channels):
                raise ValueError(f"{label} got {len(values)} values {_show(values)}; expected 1 or {channels}")
        if any(np.float32(s) == 0 for s in std):  # 1e-46 is zero in float32
            raise ValueError(f"std got {_show(self.std)}; values must be non-zero in float32")
        for name, value in (("size", size), ("channels", channels), ("mean", mean), ("std", std)):
            object.__setattr__(self, name, value)  # frozen: normalised once, here

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["size"] = list(self.size)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: Any) -> "PreprocessSpec":
        """A spec from its JSON object; ValueError naming the problem for anything else."""
        if not isinstance(d, Mapping):
            raise ValueError(f"preprocess entry got {_show(d)}; expected a JSON object")
        try:
            if "size" not in d:
                raise ValueError("it has no 'size'")
            for key in ("size", "mean", "std"):  # JSON arrays only; the constructor also takes tuples
                if key in d and not isinstance(d[key], list):
                    raise ValueError(f"{key} got {_show(d[key])}; expected a JSON array")
            defaults = {f: getattr(cls, f) for f in ("channels", "mean", "std", "resize")}
            return cls(size=d["size"], **{k: d.get(k, v) for k, v in defaults.items()})
        except ValueError as exc:
            raise ValueError(f"preprocess entry {_show(d)} is invalid: {exc}") from None


@dataclass(frozen=True)
class ModelMetadata:
    """What an exported file says about itself (the JSON under METADATA_KEY)."""

    preprocess: PreprocessSpec
    class_names: tuple[str, ...] = ()
    architecture: str = ""
    layout: str = "NHWC"  # NHWC as trained; NCHW for an ONNX file exported with --nchw
    precision: str = "fp32"
    edgekit_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.preprocess, PreprocessSpec):
            raise ValueError(f"preprocess got {_show(self.preprocess)}; expected a PreprocessSpec")
        names = self.class_names
        if isinstance(names, (str, bytes, Mapping)) or not isinstance(names, Iterable):
            raise ValueError(f"class_names got {_show(names)}; expected a list of strings")
        names = tuple(names)
        if not all(isinstance(n, str) for n in names):
            raise ValueError(f"class_names got {_show(names)}; expected a list of strings")
        for label in ("architecture", "precision", "edgekit_version", "layout"):
            if not isinstance(getattr(self, label), str):
                raise ValueError(f"{label} got {_show(getattr(self, label))}; expected a string")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout got {_show(self.layout)}; expected one of {', '.join(LAYOUTS)}")
        if not isinstance(self.extra, Mapping) or not all(isinstance(k, str) for k in self.extra):
            raise ValueError(f"extra got {_show(self.extra)}; expected a mapping with string keys")
        object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "extra", _json_value(dict(self.extra), "extra"))

    @property
    def target(self) -> str | None:
        """The name of the device target the file was exported for (``extra["target"]["name"]``,
        see :mod:`edgekit.devices`); None when the file records none."""
        entry = self.extra.get("target")
        name = entry.get("name") if isinstance(entry, Mapping) else None
        return name if isinstance(name, str) and name else None

    @property
    def target_arch(self) -> str | None:
        """The machine of the target the file was exported for (``extra["target"]["arch"]``:
        x86_64, aarch64); None when the file records none."""
        entry = self.extra.get("target")
        arch = entry.get("arch") if isinstance(entry, Mapping) else None
        return arch if isinstance(arch, str) and arch else None

    def to_json(self) -> str:
        doc = {
            "schema": SCHEMA_VERSION,
            "preprocess": self.preprocess.to_dict(),
            "class_names": list(self.class_names),
            "architecture": self.architecture,
            "layout": self.layout,
            "precision": self.precision,
            "edgekit_version": self.edgekit_version,
            "extra": self.extra,
        }
        return json.dumps(doc, sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> "ModelMetadata":
        """Parse the document; ValueError (one line) for anything that is not valid metadata."""
        try:
            doc = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"edgekit metadata is not valid JSON: {exc}") from None
        except (ValueError, RecursionError) as exc:  # e.g. a 5,000-digit integer, 100,000 nested arrays
            raise ValueError(f"edgekit metadata cannot be read: {type(exc).__name__}: {exc}") from None
        if not isinstance(doc, dict) or "preprocess" not in doc:
            raise ValueError("edgekit metadata has no 'preprocess' entry")
        schema = doc.get("schema")
        if type(schema) is not int or schema != SCHEMA_VERSION:  # noqa: E721 - true and 1.0 are not 1
            raise ValueError(f"edgekit metadata schema got {_show(schema)}; expected {SCHEMA_VERSION}")
        names = doc.get("class_names", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"edgekit metadata 'class_names' got {_show(names)}; expected a list of strings")
        extra = doc.get("extra", {})
        if not isinstance(extra, dict):
            raise ValueError(f"edgekit metadata 'extra' got {_show(extra)}; expected a JSON object")
        fields = {k: doc[k] for k in ("architecture", "layout", "precision", "edgekit_version") if k in doc}
        # The constructors' ValueErrors name the field and the value: passed on as they are.
        return cls(preprocess=PreprocessSpec.from_dict(doc["preprocess"]), class_names=tuple(names), extra=extra,
                   **fields)
