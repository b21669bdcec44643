"""Reading and writing the edgekit metadata JSON inside .tflite, .onnx and .ort files.

TFLite: the Model table's ``metadata`` vector holds an entry named ``edgekit`` that points at a
buffer whose bytes are the UTF-8 JSON (schema.fbs, ``table Metadata``). ONNX: the
``ModelProto.metadata_props`` entry with key ``edgekit``. ORT format: the same entry in the
Model table's ``metadata_props``, rewritten in pure Python (see :mod:`edgekit.runtime.ortfile`).
See :mod:`edgekit.runtime.spec` for the JSON document itself.

Reading needs no third-party package. Writing is an export-side operation: .tflite files are
rewritten with ``flatbuffers`` and LiteRT's generated schema module (object API), .onnx files
with the ``onnx`` package; both are imported only when writing. A rewritten .tflite keeps the
other metadata entries (the standard ``TFLITE_METADATA``, see :mod:`std_metadata`) and the zip
archive of associated files appended after the flatbuffer. Writes are atomic (a temporary
file in the same folder, then ``os.replace``), so a reader never sees half a file.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgekit.messages import one_line
from edgekit.tempfiles import atomic_write_with

from .errors import RuntimeModelError
from .files import model_format, open_model_file
from .flatbuf import FILE_IDENTIFIER, parse_tflite
from .ortfile import with_metadata_entry
from .spec import METADATA_KEY, ModelMetadata

# The TFLite converter aligns buffer data to 16 bytes; rewritten files keep that alignment so
# that kernels may read weights in place.
_BUFFER_ALIGNMENT = 16
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so that writing the same metadata twice gives the same bytes


def read_metadata_json(path: str | os.PathLike) -> str | None:
    """The raw edgekit JSON of a .tflite/.onnx/.ort file, or None when the file has none."""
    return open_model_file(path).metadata_json


def read_metadata(path: str | os.PathLike) -> ModelMetadata | None:
    """The edgekit metadata of a .tflite/.onnx/.ort file, or None when the file has none.

    Raises RuntimeModelError when the file is missing, not a model, truncated, or carries an
    edgekit entry that is not a valid metadata document.
    """
    return parse_metadata(path, read_metadata_json(path))


def parse_metadata(path: str | os.PathLike, text: str | None) -> ModelMetadata | None:
    if text is None:
        return None
    try:
        return ModelMetadata.from_json(text)
    except ValueError as exc:
        raise RuntimeModelError(f"{str(path)!r} has invalid edgekit metadata: {exc}") from None


def write_metadata(path: str | os.PathLike, meta: ModelMetadata) -> None:
    """Store ``meta`` in a .tflite, .onnx or .ort file (by suffix), replacing any edgekit entry."""
    fmt = model_format(path)
    if fmt == "tflite":
        write_tflite_metadata(path, meta)
    elif fmt == "ort":
        write_ort_metadata(path, meta)
    else:
        write_onnx_metadata(path, meta)


def write_tflite_metadata(path: str | os.PathLike, meta: ModelMetadata) -> None:
    """Store ``meta`` in a .tflite file, replacing any edgekit entry; atomic."""
    _write_tflite_payload(path, meta.to_json().encode("utf-8"))


def _write_tflite_payload(path: str | os.PathLike, payload_bytes: bytes) -> None:
    """Store ``payload_bytes`` as the edgekit entry of a .tflite file (tests write garbage
    through it to check what readers make of it)."""
    write_tflite_entry(path, METADATA_KEY, payload_bytes)


def write_tflite_entry(path: str | os.PathLike, name: str, payload: bytes,
                       associated_files: Mapping[str, bytes | None] | None = None) -> None:
    """Store ``payload`` as the Model.metadata entry ``name`` of a .tflite file, replacing any
    entry of that name; atomic.

    The flatbuffer is re-serialised, so the zip archive of associated files that TFLite Model
    Metadata appends to the file (TFLite Support's MetadataPopulator) is read first and appended
    again, stored uncompressed as MediaPipe's extractor requires, with ``associated_files``
    merged in (a None value removes that file). Other writers' entries and files survive, in
    whichever order the writers run.
    """
    open_model_file(path)  # refuse missing, foreign and truncated files with the usual messages
    data = Path(path).read_bytes()
    if any(ref.external for ref in parse_tflite(data).buffers):
        raise RuntimeModelError(
            f"{str(path)!r} stores buffers outside the flatbuffer (the >2 GB layout); writing metadata "
            "to such files is not supported"
        )
    files = {**packed_files(path, data), **(associated_files or {})}
    schema, flatbuffers = _tflite_writer_modules()
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    array = np.frombuffer(payload, dtype=np.uint8)
    _set_metadata_entry(schema, model, array, name)
    model.buffers = [_AlignedBuffer(buffer, schema) for buffer in model.buffers]
    builder = flatbuffers.Builder(len(data) + len(array) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    kept = {k: v for k, v in files.items() if v is not None}
    _atomic_write(Path(path), append_packed_files(bytes(builder.Output()), kept))


def packed_files(path: str | os.PathLike, data: bytes) -> dict[str, bytes]:
    """The associated files zipped after a .tflite flatbuffer (TFLite Model Metadata), in archive
    order; {} when the file carries no archive."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {info.filename: archive.read(info) for info in archive.infolist()}
    except zipfile.BadZipFile:  # no archive (or none that zipfile recognises): nothing to keep
        return {}
    except Exception as exc:  # noqa: BLE001 - a damaged archive raises OSError, EOFError, CRC errors, ...
        why = one_line(exc)
        raise RuntimeModelError(f"{str(path)!r} has associated files that cannot be read back to be kept: "
                                f"{why}") from None


def append_packed_files(model: bytes, files: Mapping[str, bytes]) -> bytes:
    """``model`` followed by a zip archive of ``files``, stored (not compressed) with fixed
    timestamps, as MetadataPopulator appends them; ``model`` unchanged when there are none."""
    if not files:
        return model
    out = io.BytesIO(model)
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, content in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=_ZIP_TIME), content)
    return out.getvalue()


def write_onnx_metadata(path: str | os.PathLike, meta: ModelMetadata) -> None:
    """Store ``meta`` in a .onnx file's metadata_props, replacing any edgekit entry; atomic."""
    _write_onnx_payload(path, meta.to_json())


def _write_onnx_payload(path: str | os.PathLike, text: str) -> None:
    """Store ``text`` as the edgekit entry of a .onnx file (see _write_tflite_payload)."""
    open_model_file(path)
    try:
        import onnx
    except ImportError:
        raise RuntimeModelError("writing ONNX metadata needs the 'onnx' package, which is not installed") from None
    model = onnx.load(str(path), load_external_data=False)  # external weights stay where they are
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=METADATA_KEY, value=text)
    _atomic_write(Path(path), model.SerializeToString())


def write_ort_metadata(path: str | os.PathLike, meta: ModelMetadata) -> None:
    """Store ``meta`` in a .ort file's metadata_props, replacing any edgekit entry; atomic.

    The file must already have a metadata_props field (edgekit's .ort files do; see
    :mod:`edgekit.runtime.ortfile`); RuntimeModelError otherwise.
    """
    _write_ort_payload(path, meta.to_json())


def _write_ort_payload(path: str | os.PathLike, text: str) -> None:
    """Store ``text`` as the edgekit entry of a .ort file (see _write_tflite_payload)."""
    open_model_file(path)
    try:
        data = with_metadata_entry(Path(path).read_bytes(), METADATA_KEY, text)
    except ValueError as exc:
        raise RuntimeModelError(f"cannot write metadata to {str(path)!r}: {exc}") from None
    _atomic_write(Path(path), data)


def _tflite_writer_modules():
    try:
        import flatbuffers
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        raise RuntimeModelError(
            "writing TFLite metadata needs the 'flatbuffers' and 'ai-edge-litert' packages"
        ) from None
    return schema, flatbuffers


def _set_metadata_entry(schema, model, payload: np.ndarray, key: str = METADATA_KEY) -> None:
    """Point the (single) entry named ``key`` at ``payload``, reusing the old entry's buffer when
    nothing else refers to it."""
    entries = list(model.metadata or [])
    ours = [m for m in entries if _name(m.name) == key]
    model.buffers = list(model.buffers or [])
    # Later duplicates are dropped; their buffers stay (another entry might share them).
    entries = [m for m in entries if _name(m.name) != key or (ours and m is ours[0])]
    if ours and ours[0].buffer not in _shared_buffers(model, ours[0]):
        model.buffers[ours[0].buffer] = schema.BufferT(data=payload)
    else:
        model.buffers.append(schema.BufferT(data=payload))
        if ours:
            ours[0].buffer = len(model.buffers) - 1
        else:
            entries.append(schema.MetadataT(name=key, buffer=len(model.buffers) - 1))
    model.metadata = entries


def _shared_buffers(model, entry) -> set[int]:
    """Buffers that something besides ``entry`` uses: tensors (weights, or buffer 0, the empty
    buffer of every activation), other metadata entries, the metadata_buffer list. A file whose
    edgekit entry points at one of them must not have it overwritten."""
    used = {0} | {t.buffer for g in (model.subgraphs or []) for t in (g.tensors or [])}
    used |= {m.buffer for m in (model.metadata or []) if m is not entry}
    return used | set(model.metadataBuffer if model.metadataBuffer is not None else [])


def _name(name: str | bytes | None) -> str | None:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else name


class _AlignedBuffer:
    """Packs a schema BufferT like its own Pack, but with the data aligned to 16 bytes."""

    def __init__(self, buffer, schema) -> None:
        self._buffer = buffer
        self._schema = schema

    def Pack(self, builder) -> int:  # noqa: N802 - the name the generated ModelT.Pack calls
        schema, buffer = self._schema, self._buffer
        data = None
        if buffer is not None and buffer.data is not None:
            payload = np.asarray(buffer.data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(payload), _BUFFER_ALIGNMENT)
            builder.head -= len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            builder.vectorNumElems = len(payload)
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        if buffer is not None:
            schema.BufferAddOffset(builder, buffer.offset)
            schema.BufferAddSize(builder, buffer.size)
        return schema.BufferEnd(builder)


def _atomic_write(path: Path, data: bytes) -> None:
    mode = path.stat().st_mode & 0o7777  # keep the original file's permissions

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)
        os.chmod(tmp, mode)

    atomic_write_with(path, write)
