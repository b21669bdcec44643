"""The preprocessing and metadata contract that travels inside every exported file.

An edgekit model file (.tflite or .onnx) carries one JSON document under the key
``edgekit``: in the TFLite flatbuffer's ``metadata`` table (name ``edgekit``, pointing at a
buffer of UTF-8 JSON) and in ONNX ``ModelProto.metadata_props``. The runtime needs nothing
beside the file to prepare an image exactly as training did.

Pixel convention: images are HxWxC uint8 (0..255), resized to ``size`` with ``resize`` and
then mapped to the model's input by ``x = (pixel - mean) / std`` per channel.

This module imports numpy and the standard library only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1
METADATA_KEY = "edgekit"
RESIZE_METHODS = ("bilinear", "nearest")


@dataclass(frozen=True)
class PreprocessSpec:
    """How raw uint8 pixels become model input; defined once, implemented in tf.data and numpy."""

    size: tuple[int, int]  # (height, width)
    channels: int = 3  # 1 (grayscale) or 3 (RGB)
    mean: tuple[float, ...] = (127.5,)  # per channel, or one value for all channels
    std: tuple[float, ...] = (127.5,)
    resize: str = "bilinear"

    def __post_init__(self) -> None:
        h, w = self.size
        if int(h) < 1 or int(w) < 1:
            raise ValueError(f"size got {self.size!r}; expected two positive integers")
        if self.channels not in (1, 3):
            raise ValueError(f"channels got {self.channels!r}; expected 1 or 3")
        if self.resize not in RESIZE_METHODS:
            raise ValueError(f"resize got {self.resize!r}; expected one of {', '.join(RESIZE_METHODS)}")
        for label, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, self.channels):
                raise ValueError(f"{label} got {len(values)} values; expected 1 or {self.channels}")
        if any(float(s) == 0.0 for s in self.std):
            raise ValueError(f"std got {self.std!r}; values must be non-zero")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["size"] = list(self.size)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessSpec":
        try:
            return cls(
                size=tuple(int(v) for v in d["size"]),  # type: ignore[arg-type]
                channels=int(d.get("channels", 3)),
                mean=tuple(float(v) for v in d.get("mean", (127.5,))),
                std=tuple(float(v) for v in d.get("std", (127.5,))),
                resize=str(d.get("resize", "bilinear")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"preprocessing metadata {d!r} is invalid: {exc}") from None


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
        return json.dumps(doc, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "ModelMetadata":
        try:
            doc = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"edgekit metadata is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or "preprocess" not in doc:
            raise ValueError("edgekit metadata has no 'preprocess' entry")
        if doc.get("schema") != SCHEMA_VERSION:
            raise ValueError(f"edgekit metadata schema got {doc.get('schema')!r}; expected {SCHEMA_VERSION}")
        names = doc.get("class_names", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("edgekit metadata 'class_names' must be a list of strings")
        return cls(
            preprocess=PreprocessSpec.from_dict(doc["preprocess"]),
            class_names=tuple(names),
            architecture=str(doc.get("architecture", "")),
            layout=str(doc.get("layout", "NHWC")),
            precision=str(doc.get("precision", "fp32")),
            edgekit_version=str(doc.get("edgekit_version", "")),
            extra=dict(doc.get("extra", {})),
        )
