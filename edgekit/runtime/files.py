"""Recognising and checking model files before any native code sees them.

A .tflite file must carry the FlatBuffers identifier ``TFL3`` at bytes 4..8 and a Model table
whose buffers lie inside the file; a .onnx file must parse as a ModelProto with a graph. The
checks use the pure-Python readers in :mod:`flatbuf` and :mod:`onnxproto`, because a truncated or
foreign file handed to the TFLite interpreter can crash the process instead of raising.

An ONNX file may keep tensors in other files ("external data", a ``location`` relative to the
model's folder). A file from elsewhere could name ``../../etc/shadow``, an absolute path or a
symlink that leads out of the folder and have the backend read it, so every location must be a
relative path that stays inside the model's folder once symlinks are resolved, and must exist;
anything else is refused before onnxruntime opens the model.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from .errors import RuntimeModelError
from .flatbuf import FILE_IDENTIFIER, has_identifier, parse_tflite
from .onnxproto import ExternalData, external_data, parse_onnx
from .spec import METADATA_KEY

FORMATS = {".tflite": "tflite", ".onnx": "onnx"}


@dataclass(frozen=True)
class ModelFile:
    """A checked model file and the raw edgekit metadata JSON it carries (None when absent)."""

    path: Path
    format: str  # "tflite" or "onnx"
    metadata_json: str | None


def model_format(path: str | os.PathLike) -> str:
    """'tflite' or 'onnx' from the file suffix; RuntimeModelError for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise RuntimeModelError(f"model file {str(path)!r} has suffix {suffix!r}; expected one of {', '.join(FORMATS)}")
    return FORMATS[suffix]


def open_model_file(path: str | os.PathLike) -> ModelFile:
    """Check that ``path`` is a readable, complete .tflite/.onnx file and read its metadata JSON."""
    path = Path(path)
    fmt = model_format(path)
    if not path.exists():
        raise RuntimeModelError(f"model file {str(path)!r} does not exist")
    if not path.is_file():
        raise RuntimeModelError(f"model file {str(path)!r} is not a regular file")
    if path.stat().st_size == 0:
        raise RuntimeModelError(f"model file {str(path)!r} is empty")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        text = _tflite_metadata(path, data) if fmt == "tflite" else _onnx_metadata(path, data)
    return ModelFile(path, fmt, text)


def _tflite_metadata(path: Path, data) -> str | None:
    if not has_identifier(data[:8]):
        raise RuntimeModelError(
            f"{str(path)!r} is not a TFLite file: bytes 4..8 are {bytes(data[4:8])!r}; expected {FILE_IDENTIFIER!r}"
        )
    try:
        layout = parse_tflite(data)
    except ValueError as exc:
        raise RuntimeModelError(f"{str(path)!r} is truncated or corrupt: {exc}") from None
    if layout.subgraphs == 0:
        raise RuntimeModelError(f"{str(path)!r} is not a usable TFLite model: it has no subgraphs")
    raw = layout.metadata_bytes(data, METADATA_KEY)
    return None if raw is None else _decode(path, raw)


def _onnx_metadata(path: Path, data) -> str | None:
    try:
        layout = parse_onnx(data)
    except ValueError as exc:
        raise RuntimeModelError(f"{str(path)!r} is not an ONNX file (or is truncated): {exc}") from None
    if not layout.has_graph:
        raise RuntimeModelError(f"{str(path)!r} is not an ONNX model: it has no graph")
    try:
        refs = external_data(data)
    except ValueError as exc:
        raise RuntimeModelError(f"{str(path)!r} is not an ONNX file (or is truncated): {exc}") from None
    for ref in refs:
        _check_external(path, ref)
    return layout.metadata_props.get(METADATA_KEY)


def _check_external(path: Path, ref: ExternalData) -> None:
    """Refuse external data outside the model's folder (absolute, ``..``, or via a symlink)."""
    tensor = f"{str(path)!r}: tensor {ref.tensor!r}"
    if not ref.location:
        raise RuntimeModelError(f"{tensor} is marked as external data but names no location; refused")
    where = f"{tensor} keeps its data in external file {ref.location!r}"
    escapes = any(p.is_absolute() or p.drive or ".." in p.parts
                  for p in (PurePosixPath(ref.location), PureWindowsPath(ref.location)))
    folder = Path(os.path.realpath(path.parent))
    target = None if escapes else Path(os.path.realpath(folder / ref.location))
    if target is None or not target.is_relative_to(folder):
        via = "" if target is None else f" (it leads to {str(target)!r})"
        raise RuntimeModelError(f"{where}{via}, outside the model's folder {str(folder)!r}; refused "
                                "(external data must be a relative path inside that folder)")
    if not target.is_file():
        raise RuntimeModelError(f"{where}, which does not exist")


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RuntimeModelError(f"{str(path)!r} has edgekit metadata that is not UTF-8 text") from None
