"""Recognising and checking model files before any native code sees them.

A .tflite file must carry the FlatBuffers identifier ``TFL3`` at bytes 4..8 and a Model table
whose buffers lie inside the file; a .onnx file must parse as a ModelProto with a graph; a .ort
file (ONNX Runtime's ORT format) must carry the identifier ``ORTM`` and a model with a graph.
The checks use the pure-Python readers in :mod:`flatbuf`, :mod:`onnxproto` and :mod:`ortfile`,
because a truncated or foreign file handed to the TFLite interpreter can crash the process
instead of raising (onnxruntime verifies ORT files itself, but its message names no cause).

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
from .tflite_graph import parse_graph
from .onnxproto import ExternalData, external_data, parse_onnx
from .ortfile import ORT_IDENTIFIER, PLACEHOLDER, has_ort_identifier, parse_ort
from .spec import METADATA_KEY

STANDARD_METADATA_NAME = "TFLITE_METADATA"  # TFLite Model Metadata (metadata_schema.fbs), see std_metadata

FORMATS = {".tflite": "tflite", ".onnx": "onnx", ".ort": "ort"}


@dataclass(frozen=True)
class ModelFile:
    """A checked model file, the raw edgekit metadata JSON it carries and, for .tflite, the raw
    buffer of its standard TFLite Model Metadata entry (each None when absent)."""

    path: Path
    format: str  # "tflite", "onnx" or "ort"
    metadata_json: str | None
    standard_metadata: bytes | None = None  # the TFLITE_METADATA buffer, see std_metadata


def model_format(path: str | os.PathLike) -> str:
    """'tflite', 'onnx' or 'ort' from the file suffix; RuntimeModelError for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise RuntimeModelError(f"model file {str(path)!r} has suffix {suffix!r}; expected one of {', '.join(FORMATS)}")
    return FORMATS[suffix]


def open_model_file(path: str | os.PathLike) -> ModelFile:
    """Check that ``path`` is a readable, complete .tflite/.onnx/.ort file and read its metadata JSON."""
    path = Path(path)
    fmt = model_format(path)
    if not path.exists():
        raise RuntimeModelError(f"model file {str(path)!r} does not exist")
    if not path.is_file():
        raise RuntimeModelError(f"model file {str(path)!r} is not a regular file")
    if path.stat().st_size == 0:
        raise RuntimeModelError(f"model file {str(path)!r} is empty")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if fmt == "tflite":
            text, standard = _tflite_metadata(path, data)
        else:
            text, standard = _READERS[fmt](path, data), None
    return ModelFile(path, fmt, text, standard)


def _tflite_metadata(path: Path, data) -> tuple[str | None, bytes | None]:
    """The edgekit JSON and the raw TFLITE_METADATA buffer. Bytes after the flatbuffer (the zip
    of associated files that TFLite Model Metadata appends) are allowed: the checks only need
    every offset and buffer to lie inside the file."""
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
    _check_constants(path, data)
    raw = layout.metadata_bytes(data, METADATA_KEY)
    return (None if raw is None else _decode(path, raw)), layout.metadata_bytes(data, STANDARD_METADATA_NAME)


# Bytes per element of the fixed-width TensorTypes; packed (int4, ...), string and handle types
# are not checked.
_ITEM_BYTES = {"float32": 4, "float16": 2, "int32": 4, "uint8": 1, "int64": 8, "bool": 1, "int16": 2,
               "complex64": 8, "int8": 1, "float64": 8, "complex128": 16, "uint64": 8, "uint32": 4,
               "uint16": 2, "bfloat16": 2}


def _check_constants(path: Path, data) -> None:
    """Operator and tensor indices in range, and every constant tensor of the main subgraph
    (weights, biases) backed by exactly as many bytes as its shape needs: LiteRT trusts both and
    reads past the buffer (a segfault in ``invoke``) when a file says otherwise."""
    try:
        graph = parse_graph(data)
    except ValueError as exc:
        raise RuntimeModelError(f"{str(path)!r} is truncated or corrupt: {exc}") from None
    for t in graph.tensors:
        item = _ITEM_BYTES.get(t.dtype)
        if not t.constant or item is None or t.sparse:
            continue
        have, need = graph.layout.buffers[t.buffer].size, t.size * item
        if have != need:
            raise RuntimeModelError(
                f"{str(path)!r} is corrupt: constant tensor {t.name!r} ({t.dtype}, shape {list(t.shape)}) "
                f"needs {need} bytes but its buffer {t.buffer} holds {have}")


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


def _ort_metadata(path: Path, data) -> str | None:
    if not has_ort_identifier(data[:8]):
        raise RuntimeModelError(f"{str(path)!r} is not an ORT format file: bytes 4..8 are {bytes(data[4:8])!r}; "
                                f"expected {ORT_IDENTIFIER!r}")
    try:
        layout = parse_ort(data)
    except ValueError as exc:
        raise RuntimeModelError(f"{str(path)!r} is truncated or corrupt: {exc}") from None
    if layout.nodes == 0:
        raise RuntimeModelError(f"{str(path)!r} is not a usable ORT model: its graph has no nodes")
    text = layout.metadata.get(METADATA_KEY)
    return None if text == PLACEHOLDER else text


_READERS = {"onnx": _onnx_metadata, "ort": _ort_metadata}  # .tflite: _tflite_metadata, which also returns the standard entry


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
