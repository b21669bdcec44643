"""A small, defensive reader for the parts of a TFLite file that edgekit needs.

Format: the FlatBuffers binary encoding (https://flatbuffers.dev/internals/) of the TFLite
schema (tensorflow/compiler/mlir/lite/schema/schema.fbs, file identifier ``TFL3``). Only the
``Model`` root table is read: its version, buffers (inline ``data`` vectors, or ``offset``/
``size`` pairs pointing past the flatbuffer for models over 2 GB), ``metadata`` entries and the
headers of its other vectors.

The reader exists so that a file can be checked before it reaches the native interpreter (a
truncated or corrupt file can crash it) and so that metadata can be read without any
FlatBuffers package. It never recurses and reads a fixed depth of tables; every offset is
bounds-checked, so any malformed input raises ValueError and nothing else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

FILE_IDENTIFIER = b"TFL3"

_U16 = struct.Struct("<H")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

# Field slots of the tables read here (schema.fbs order).
_MODEL_VERSION, _MODEL_OPCODES, _MODEL_SUBGRAPHS = 0, 1, 2
_MODEL_DESCRIPTION, _MODEL_BUFFERS, _MODEL_METADATA_BUFFER, _MODEL_METADATA = 3, 4, 5, 6
_MODEL_SIGNATURE_DEFS = 7
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_SUBGRAPH_VECTORS = ((0, 4), (1, 4), (2, 4), (3, 4))  # tensors, inputs, outputs, operators


def _read(fmt: struct.Struct, buf, pos: int) -> int:
    if pos < 0 or pos + fmt.size > len(buf):
        raise ValueError(f"read of {fmt.size} bytes at offset {pos} is outside the file ({len(buf)} bytes)")
    return fmt.unpack_from(buf, pos)[0]


@dataclass(frozen=True)
class _Table:
    """A FlatBuffers table: its position and the vtable that maps field slots to offsets."""

    buf: object
    pos: int
    vtable: int
    vtable_size: int
    table_size: int

    @classmethod
    def at(cls, buf, pos: int) -> "_Table":
        vtable = pos - _read(_I32, buf, pos)
        vtable_size = _read(_U16, buf, vtable)
        table_size = _read(_U16, buf, vtable + 2)
        if vtable_size < 4 or vtable_size % 2 or vtable + vtable_size > len(buf):
            raise ValueError(f"table at offset {pos} has an invalid vtable (size {vtable_size} at {vtable})")
        if table_size < 4 or pos + table_size > len(buf):
            raise ValueError(f"table at offset {pos} claims {table_size} bytes past the end of the file")
        return cls(buf, pos, vtable, vtable_size, table_size)

    def field(self, slot: int, width: int) -> int | None:
        """Absolute position of a field of ``width`` bytes, or None when it is absent."""
        entry = 4 + 2 * slot
        if entry >= self.vtable_size:
            return None
        offset = _read(_U16, self.buf, self.vtable + entry)
        if offset == 0:
            return None
        if offset + width > self.table_size:
            raise ValueError(f"field {slot} of the table at {self.pos} lies outside the table")
        return self.pos + offset

    def scalar(self, slot: int, fmt: struct.Struct, default: int = 0) -> int:
        pos = self.field(slot, fmt.size)
        return default if pos is None else _read(fmt, self.buf, pos)

    def vector(self, slot: int, elem_size: int) -> tuple[int, int]:
        """(start, length) of a vector field; (0, 0) when absent."""
        pos = self.field(slot, 4)
        if pos is None:
            return 0, 0
        header = pos + _read(_U32, self.buf, pos)
        length = _read(_U32, self.buf, header)
        start = header + 4
        if start + length * elem_size > len(self.buf):
            raise ValueError(
                f"vector of {length} x {elem_size} bytes at offset {header} runs past the end of the file "
                f"({len(self.buf)} bytes)"
            )
        return start, length

    def table(self, slot: int) -> "_Table | None":
        """The sub-table a field points at; None when the field is absent."""
        pos = self.field(slot, 4)
        return None if pos is None else _Table.at(self.buf, pos + _read(_U32, self.buf, pos))

    def tables(self, slot: int) -> list["_Table"]:
        start, length = self.vector(slot, 4)
        return [_Table.at(self.buf, p + _read(_U32, self.buf, p)) for p in range(start, start + 4 * length, 4)]

    def string(self, slot: int) -> str | None:
        start, length = self.vector(slot, 1)
        if start == 0:
            return None
        try:
            return bytes(self.buf[start : start + length]).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"string at offset {start} is not valid UTF-8") from None


@dataclass(frozen=True)
class BufferRef:
    """Where one TFLite buffer's bytes lie in the file."""

    start: int
    size: int
    external: bool = False  # stored after the flatbuffer (offset/size form), not inline


@dataclass(frozen=True)
class TfliteLayout:
    """What the reader found in a TFLite file."""

    version: int
    buffers: tuple[BufferRef, ...]
    metadata: dict[str, int]  # metadata entry name -> buffer index (first entry of a name wins)
    subgraphs: int

    def buffer_bytes(self, data, index: int) -> bytes:
        ref = self.buffers[index]
        return bytes(data[ref.start : ref.start + ref.size])

    def metadata_bytes(self, data, name: str) -> bytes | None:
        index = self.metadata.get(name)
        return None if index is None else self.buffer_bytes(data, index)


def has_identifier(head: bytes) -> bool:
    """True when bytes 4..8 hold the TFLite file identifier."""
    return len(head) >= 8 and bytes(head[4:8]) == FILE_IDENTIFIER


def parse_tflite(data) -> TfliteLayout:
    """Read and bounds-check the Model table of a TFLite file (bytes, bytearray or mmap)."""
    if not has_identifier(data[:8]):
        raise ValueError(f"bytes 4..8 are {bytes(data[4:8])!r}; expected {FILE_IDENTIFIER!r}")
    model = _Table.at(data, _read(_U32, data, 0))
    buffers = tuple(_buffer_ref(table, len(data)) for table in model.tables(_MODEL_BUFFERS))
    metadata: dict[str, int] = {}
    for entry in model.tables(_MODEL_METADATA):
        name = entry.string(_METADATA_NAME)
        index = entry.scalar(_METADATA_BUFFER, _U32)
        if index >= len(buffers):
            raise ValueError(f"metadata entry {name!r} points at buffer {index}; the file has {len(buffers)}")
        if name is not None:
            metadata.setdefault(name, index)
    subgraphs = model.tables(_MODEL_SUBGRAPHS)
    for subgraph in subgraphs:
        for slot, width in _SUBGRAPH_VECTORS:
            subgraph.vector(slot, width)
    for slot, width in ((_MODEL_OPCODES, 4), (_MODEL_METADATA_BUFFER, 4), (_MODEL_SIGNATURE_DEFS, 4)):
        model.vector(slot, width)
    model.string(_MODEL_DESCRIPTION)
    return TfliteLayout(model.scalar(_MODEL_VERSION, _U32), buffers, metadata, len(subgraphs))


def _buffer_ref(table: _Table, file_size: int) -> BufferRef:
    start, length = table.vector(_BUFFER_DATA, 1)
    offset = table.scalar(_BUFFER_OFFSET, _U64)
    if offset <= 1:  # schema.fbs: offset 0 or 1 means the data, if any, is inline
        return BufferRef(start, length)
    size = table.scalar(_BUFFER_SIZE, _U64)
    if offset + size > file_size:
        raise ValueError(f"buffer at offset {offset} of {size} bytes ends past the end of the file ({file_size} bytes)")
    return BufferRef(offset, size, external=True)
