"""A small, defensive reader of ONNX Runtime's ORT format, and the edgekit metadata rewriter.

Format: the FlatBuffers binary encoding (https://flatbuffers.dev/internals/) of ONNX Runtime's
schema (onnxruntime/core/flatbuffers/schema/ort.fbs, file identifier ``ORTM``; the generated
Python is ``onnxruntime/tools/ort_format_model/ort_flatbuffers_py``). The root table is
``InferenceSession {ort_version, model, ...}``; ``Model`` mirrors ONNX's ModelProto and keeps
its ``metadata_props`` (a vector of ``StringStringEntry {key, value}``), which is where edgekit
stores its JSON, under the same key as in a .onnx file
(https://onnxruntime.ai/docs/performance/model-optimizations/ort-format-models.html).

Like :mod:`flatbuf` for TFLite, the reader exists so that a file is checked (identifier,
root, model, graph, metadata, vector bounds) and its metadata read without onnxruntime or any
FlatBuffers package; every offset is bounds-checked, so malformed input raises ValueError only.

Rewriting: a FlatBuffers table cannot grow a field once built, and the builder lays children
out after (at higher offsets than) their parents, so a new ``metadata_props`` vector is
appended at the end of the file and the Model table's existing ``metadata_props`` offset is
pointed at it; the old vector stays behind as a few unreferenced bytes. The Model table must
therefore already have that field: edgekit's converter (``edgekit.export.ort_convert``)
converts an ONNX graph that carries an empty edgekit entry (``PLACEHOLDER``), which ONNX
Runtime copies into the file and readers take as no metadata.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .flatbuf import _I32, _U32, _read, _Table

ORT_IDENTIFIER = b"ORTM"
PLACEHOLDER = ""  # the edgekit entry of a converted file whose metadata is not written yet

# Field slots (ort.fbs order).
_SESSION_VERSION, _SESSION_MODEL = 0, 1
_MODEL_GRAPH, _MODEL_METADATA = 7, 9
_ENTRY_KEY, _ENTRY_VALUE = 0, 1
_GRAPH_VECTORS = ((0, 4), (1, 4), (2, 4), (4, 4), (5, 4), (6, 4), (7, 4))  # initializers .. sparse


@dataclass(frozen=True)
class OrtLayout:
    """What the reader found in an ORT format file."""

    ort_version: str | None  # the ORT *format* version ("6"), not onnxruntime's release
    metadata: dict[str, str]  # metadata_props, first entry of a key wins
    nodes: int
    metadata_field: int | None  # absolute position of Model.metadata_props' offset; None: absent


def has_ort_identifier(head: bytes) -> bool:
    """True when bytes 4..8 hold the ORT format file identifier."""
    return len(head) >= 8 and bytes(head[4:8]) == ORT_IDENTIFIER


def _child(table: _Table, slot: int) -> _Table | None:
    pos = table.field(slot, 4)
    return None if pos is None else _Table.at(table.buf, pos + _read(_U32, table.buf, pos))


def parse_ort(data) -> OrtLayout:
    """Read and bounds-check the InferenceSession, Model and Graph tables (bytes or mmap)."""
    if not has_ort_identifier(data[:8]):
        raise ValueError(f"bytes 4..8 are {bytes(data[4:8])!r}; expected {ORT_IDENTIFIER!r}")
    session = _Table.at(data, _read(_U32, data, 0))
    model = _child(session, _SESSION_MODEL)
    if model is None:
        raise ValueError("the InferenceSession table has no model")
    graph = _child(model, _MODEL_GRAPH)
    if graph is None:
        raise ValueError("the model has no graph")
    for slot, width in _GRAPH_VECTORS:
        graph.vector(slot, width)
    metadata: dict[str, str] = {}
    for entry in model.tables(_MODEL_METADATA):
        key = entry.string(_ENTRY_KEY)
        if key is not None:
            metadata.setdefault(key, entry.string(_ENTRY_VALUE) or "")
    return OrtLayout(session.string(_SESSION_VERSION), metadata, graph.vector(2, 4)[1],
                     model.field(_MODEL_METADATA, 4))


def with_metadata_entry(data: bytes, key: str, value: str) -> bytes:
    """``data`` with metadata_props[key] = value (other entries kept, in order); see the module
    docstring for how. ValueError when the file has no metadata_props field to point elsewhere."""
    layout = parse_ort(data)
    if layout.metadata_field is None:
        raise ValueError("its Model table has no metadata_props field, so an entry cannot be added "
                         "in place; convert it again from an ONNX file that has metadata_props")
    entries = {**layout.metadata, key: value}
    out = bytearray(data)
    vector = _append_entries(out, list(entries.items()))
    struct.pack_into("<I", out, layout.metadata_field, vector - layout.metadata_field)
    return bytes(out)


def _append_entries(out: bytearray, entries: list[tuple[str, str]]) -> int:
    """Append one shared vtable, a vector of StringStringEntry tables and their strings to
    ``out`` (every offset points forward, as FlatBuffers requires); the vector's position."""
    out += b"\0" * (-len(out) % 8)
    vtable = len(out)
    out += struct.pack("<4H", 8, 12, 4, 8)  # vtable size, table size, key at +4, value at +8
    vector = len(out)
    tables = vector + 4 + 4 * len(entries)
    strings, blobs = [], []
    pos = tables + 12 * len(entries)
    for text in (s for pair in entries for s in pair):
        raw = text.encode("utf-8")
        blob = struct.pack("<I", len(raw)) + raw + b"\0"
        blob += b"\0" * (-len(blob) % 4)
        strings.append(pos)
        blobs.append(blob)
        pos += len(blob)
    out += struct.pack("<I", len(entries))
    for i in range(len(entries)):
        out += struct.pack("<I", tables + 12 * i - (vector + 4 + 4 * i))
    for i in range(len(entries)):
        table = tables + 12 * i
        out += _I32.pack(table - vtable) + struct.pack("<II", strings[2 * i] - (table + 4),
                                                       strings[2 * i + 1] - (table + 8))
    for blob in blobs:
        out += blob
    return vector
