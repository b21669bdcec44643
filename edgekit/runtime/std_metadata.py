"""Reading the standard TFLite Model Metadata of third-party .tflite files.

Format: TFLite Model Metadata (tensorflow/tflite-support, ``metadata_schema.fbs``, file
identifier ``M001``; the copy shipped with MediaPipe is mediapipe/tasks/metadata/). The model's
``metadata`` vector has an entry named ``TFLITE_METADATA`` whose buffer holds a
``ModelMetadata`` flatbuffer; associated files (label lists) are appended to the model file as
a zip archive, as TFLite Support's ``MetadataPopulator`` writes them. MediaPipe Tasks, the
LiteRT Task and Support libraries and Android Studio ML Model Binding read it.

Only what an image classifier or embedder needs is read: per tensor its name, content
(ImageProperties colour space, or FeatureProperties), NormalizationOptions, Stats and associated
files. Field slots, in schema order:

- ``ModelMetadata``: name 0, description 1, version 2, subgraph_metadata 3, author 4,
  license 5, associated_files 6, min_parser_version 7.
- ``SubGraphMetadata``: input_tensor_metadata 2, output_tensor_metadata 3.
- ``TensorMetadata``: name 0, description 1, content 3, process_units 4, stats 5,
  associated_files 6.
- ``Content``: content_properties (union: type 0, value 1); ``ImageProperties``: color_space 0.
- ``ProcessUnit``: options (union: type 0, value 1); ``NormalizationOptions``: mean 0, std 1.
- ``Stats``: max 0, min 1. ``AssociatedFile``: name 0, description 1, type 2, locale 3.

The flatbuffer is read with the bounds-checked tables of :mod:`flatbuf`: malformed input raises
ValueError and nothing else; callers turn it into a one-line :class:`RuntimeModelError`.
:func:`to_model_metadata` turns the standard metadata into edgekit's :class:`ModelMetadata`
(used only when a file has no edgekit entry). Imports numpy and the standard library only.
"""

from __future__ import annotations

import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.messages import one_line

from .backends import TensorInfo
from .errors import RuntimeModelError
from .files import STANDARD_METADATA_NAME, open_model_file
from .flatbuf import _U32, _read, _Table
from .spec import ModelMetadata, PreprocessSpec

METADATA_NAME = STANDARD_METADATA_NAME
METADATA_IDENTIFIER = b"M001"
ASSOCIATED_FILE_TYPES = ("UNKNOWN", "DESCRIPTIONS", "TENSOR_AXIS_LABELS", "TENSOR_VALUE_LABELS",
                         "TENSOR_AXIS_SCORE_CALIBRATION", "VOCABULARY", "SCANN_INDEX_FILE")
COLOR_SPACES = ("UNKNOWN", "RGB", "GRAYSCALE")
_CONTENT_TYPES = ("NONE", "FeatureProperties", "ImageProperties", "BoundingBoxProperties", "AudioProperties")
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union tag
_MAX_LABEL_BYTES = 16 << 20  # a label file from an unknown zip is read whole: cap it

_F32 = struct.Struct("<f")
_U8 = struct.Struct("<B")
_MM_NAME, _MM_DESCRIPTION, _MM_VERSION, _MM_SUBGRAPHS, _MM_AUTHOR, _MM_LICENSE = 0, 1, 2, 3, 4, 5
_MM_FILES, _MM_MIN_PARSER = 6, 7
_SG_INPUTS, _SG_OUTPUTS = 2, 3
_TM_NAME, _TM_DESCRIPTION, _TM_CONTENT, _TM_UNITS, _TM_STATS, _TM_FILES = 0, 1, 3, 4, 5, 6
_AF_NAME, _AF_DESCRIPTION, _AF_TYPE, _AF_LOCALE = 0, 1, 2, 3


@dataclass(frozen=True)
class AssociatedFile:
    name: str
    type: str  # an ASSOCIATED_FILE_TYPES name, or "type_<n>" for an unknown code
    description: str = ""
    locale: str = ""


@dataclass(frozen=True)
class TensorMetadata:
    name: str
    description: str = ""
    content: str = "NONE"  # a ContentProperties name: ImageProperties, FeatureProperties, ...
    color_space: str = "UNKNOWN"  # ImageProperties only
    mean: tuple[float, ...] | None = None  # NormalizationOptions
    std: tuple[float, ...] | None = None
    stats_min: tuple[float, ...] = ()
    stats_max: tuple[float, ...] = ()
    files: tuple[AssociatedFile, ...] = ()

    def labels_file(self) -> AssociatedFile | None:
        """The first TENSOR_AXIS_LABELS file (the first locale when there are several)."""
        return next((f for f in self.files if f.type == "TENSOR_AXIS_LABELS"), None)


@dataclass(frozen=True)
class StandardMetadata:
    """What a TFLITE_METADATA entry says about the model and its first subgraph."""

    name: str = ""
    description: str = ""
    version: str = ""
    author: str = ""
    license: str = ""
    min_parser_version: str = ""
    inputs: tuple[TensorMetadata, ...] = ()
    outputs: tuple[TensorMetadata, ...] = ()
    files: tuple[AssociatedFile, ...] = ()


def _floats(table: _Table | None, slot: int) -> tuple[float, ...]:
    if table is None:
        return ()
    start, length = table.vector(slot, 4)
    return tuple(_read(_F32, table.buf, start + 4 * i) for i in range(length))


def _text(table: _Table, slot: int) -> str:
    return table.string(slot) or ""


def _union(table: _Table, slot: int, names: tuple[str, ...]) -> tuple[str, _Table | None]:
    """(type name, value table) of a union stored as a type byte at ``slot`` and an offset after it."""
    code = table.scalar(slot, _U8)
    return (names[code] if code < len(names) else f"type_{code}"), (table.table(slot + 1) if code else None)


def _files(table: _Table, slot: int) -> tuple[AssociatedFile, ...]:
    out = []
    for f in table.tables(slot):
        code = f.scalar(_AF_TYPE, _U8)
        kind = ASSOCIATED_FILE_TYPES[code] if code < len(ASSOCIATED_FILE_TYPES) else f"type_{code}"
        out.append(AssociatedFile(_text(f, _AF_NAME), kind, _text(f, _AF_DESCRIPTION), _text(f, _AF_LOCALE)))
    return tuple(out)


def _tensor(table: _Table) -> TensorMetadata:
    content, color_space = "NONE", "UNKNOWN"
    holder = table.table(_TM_CONTENT)
    if holder is not None:
        content, props = _union(holder, 0, _CONTENT_TYPES)
        if content == "ImageProperties" and props is not None:
            code = props.scalar(0, _U8)
            color_space = COLOR_SPACES[code] if code < len(COLOR_SPACES) else f"type_{code}"
    mean = std = None
    for unit in table.tables(_TM_UNITS):
        code = unit.scalar(0, _U8)
        options = unit.table(1) if code == _NORMALIZATION_OPTIONS else None
        if options is not None and mean is None:  # the first NormalizationOptions applies
            mean, std = _floats(options, 0), _floats(options, 1)
    stats = table.table(_TM_STATS)
    return TensorMetadata(_text(table, _TM_NAME), _text(table, _TM_DESCRIPTION), content, color_space, mean, std,
                          _floats(stats, 1), _floats(stats, 0), _files(table, _TM_FILES))


def parse_standard_metadata(data: bytes) -> StandardMetadata:
    """Read a ModelMetadata flatbuffer (the TFLITE_METADATA buffer); ValueError if malformed."""
    if len(data) < 8 or bytes(data[4:8]) != METADATA_IDENTIFIER:
        raise ValueError(f"bytes 4..8 are {bytes(data[4:8])!r}; expected {METADATA_IDENTIFIER!r}")
    root = _Table.at(data, _read(_U32, data, 0))
    subgraphs = root.tables(_MM_SUBGRAPHS)
    first = subgraphs[0] if subgraphs else None
    inputs = tuple(_tensor(t) for t in first.tables(_SG_INPUTS)) if first else ()
    outputs = tuple(_tensor(t) for t in first.tables(_SG_OUTPUTS)) if first else ()
    return StandardMetadata(_text(root, _MM_NAME), _text(root, _MM_DESCRIPTION), _text(root, _MM_VERSION),
                            _text(root, _MM_AUTHOR), _text(root, _MM_LICENSE), _text(root, _MM_MIN_PARSER),
                            inputs, outputs, _files(root, _MM_FILES))


def parse_or_refuse(path: str | os.PathLike, data: bytes) -> StandardMetadata:
    """:func:`parse_standard_metadata` with its ValueError turned into a one-line RuntimeModelError."""
    try:
        return parse_standard_metadata(data)
    except ValueError as exc:
        raise RuntimeModelError(f"{str(path)!r} has invalid TFLite Model Metadata ({METADATA_NAME}): {exc}") from None


def read_associated_file(path: str | os.PathLike, name: str) -> bytes:
    """The bytes of associated file ``name`` from the zip archive appended to ``path``."""
    where = f"{str(path)!r}: associated file {name!r}"
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(name)
            if info.file_size > _MAX_LABEL_BYTES:
                raise RuntimeModelError(f"{where} is {info.file_size} bytes; at most {_MAX_LABEL_BYTES} are read")
            return archive.read(info)
    except RuntimeModelError:
        raise
    except KeyError:
        raise RuntimeModelError(f"{where} is named in the metadata but not packed in the file") from None
    except Exception as exc:  # noqa: BLE001 - a corrupt archive raises BadZipFile, OSError, EOFError, ...
        why = one_line(exc)
        raise RuntimeModelError(f"{where} cannot be read from the file's zip archive: {why}") from None


def read_labels(path: str | os.PathLike, name: str) -> tuple[str, ...]:
    """One label per line (a trailing newline and ``\\r`` line ends allowed), as MediaPipe reads them."""
    try:
        text = read_associated_file(path, name).decode("utf-8")
    except UnicodeDecodeError:
        raise RuntimeModelError(f"{str(path)!r}: label file {name!r} is not UTF-8 text") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return tuple(line[:-1] if line.endswith("\r") else line for line in lines)


def to_model_metadata(path: str | os.PathLike, std: StandardMetadata, inputs: list[TensorInfo],
                      outputs: list[TensorInfo]) -> ModelMetadata | None:
    """edgekit metadata equivalent to the standard metadata of a one-image-input model, or None
    when the file's input is not an NHWC image with a known normalisation."""
    if len(inputs) != 1 or not std.inputs:
        return None
    spec = _preprocess_spec(path, std.inputs[0], inputs[0])
    if spec is None:
        return None
    labels = std.outputs[0].labels_file() if std.outputs and outputs else None
    names = read_labels(path, labels.name) if labels is not None else ()
    extra = {"source": METADATA_NAME, "name": std.name, "description": std.description, "version": std.version,
             "author": std.author}
    return ModelMetadata(preprocess=spec, class_names=names, architecture=std.name, precision="",
                         extra=extra)


def _preprocess_spec(path, meta: TensorMetadata, info: TensorInfo) -> PreprocessSpec | None:
    """Size and channels from the tensor; normalisation from NormalizationOptions for a float
    input. A uint8 input takes the raw pixels, as the Support and MediaPipe libraries feed it:
    mean = zero_point and std = 1/scale make the runtime's ``q = rint(x/scale + zero_point)``
    give back the pixel. An int8 input uses NormalizationOptions when present (normalise, then
    quantize, as edgekit's own int8 files do), else the pixels shifted into the int8 range
    (mean = zero_point + 128: q = pixel - 128)."""
    shape = info.shape
    if len(shape) != 4 or shape[3] not in (1, 3) or shape[1] is None or shape[2] is None:
        return None
    channels = int(shape[3])
    expected = {"RGB": 3, "GRAYSCALE": 1}.get(meta.color_space)
    if expected is not None and expected != channels:
        raise RuntimeModelError(f"{str(path)!r}: the metadata says colour space {meta.color_space} but input "
                                f"{info.name!r} has {channels} channels (shape {list(shape)})")
    mean, std = _normalisation(meta, info)
    if mean is None:
        return None
    try:
        return PreprocessSpec(size=(int(shape[1]), int(shape[2])), channels=channels, mean=mean, std=std)
    except ValueError as exc:
        raise RuntimeModelError(f"{str(path)!r} has unusable TFLite Model Metadata normalisation: {exc}") from None


def _normalisation(meta: TensorMetadata, info: TensorInfo):
    kind, quant = info.dtype.kind, info.quantization
    has_options = meta.mean is not None and len(meta.mean) > 0 and len(meta.std or ()) > 0
    if kind == "f":
        return (meta.mean, meta.std) if has_options else (None, None)
    if kind not in "iu" or quant is None or not quant.scale:
        return None, None
    if info.dtype == np.int8 and has_options:
        return meta.mean, meta.std
    shift = -int(np.iinfo(info.dtype).min)  # 0 for uint8, 128 for int8
    return (float(quant.zero_point + shift),), (1.0 / float(quant.scale),)


def read_standard_metadata(path: str | os.PathLike) -> StandardMetadata | None:
    """The TFLITE_METADATA of a .tflite file, or None when it has none (RuntimeModelError for a
    file that is not a usable model or whose entry is malformed)."""
    checked = open_model_file(path)
    raw = checked.standard_metadata
    return None if raw is None else parse_or_refuse(Path(path), raw)
