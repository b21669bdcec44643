"""A small, defensive reader for the top level of an ONNX ``ModelProto``.

Format: the Protocol Buffers wire encoding
(https://protobuf.dev/programming-guides/encoding/) of onnx.proto's ``ModelProto``. Only three
things are read: whether a ``graph`` (field 7) is present, the ``metadata_props`` (field 14,
``StringStringEntryProto`` with ``key`` = 1 and ``value`` = 2), and, in
:func:`external_data`, the ``location`` of every tensor whose bytes live in another file
(onnx.proto's "external data": ``TensorProto.external_data`` = 13, ``data_location`` = 14).
Every other field is skipped by its length, so the weights are never copied, and a memory map
of a large file is read only where the fields that are looked at lie.

Malformed input raises ValueError and nothing else; the reader never recurses (nested
graphs are walked with an explicit stack).
"""

from __future__ import annotations

from dataclasses import dataclass

_GRAPH_FIELD = 7
_METADATA_PROPS_FIELD = 14
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5
_FIXED_WIDTHS = {_FIXED64: 8, _FIXED32: 4}


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 70, 7):
        if pos >= end:
            raise ValueError(f"varint at offset {pos} runs past the end of its message")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise ValueError(f"varint ending at offset {pos} is longer than 10 bytes")


def _fields(buf, start: int, end: int):
    """Yield (field number, wire type, value start, value end) for one message."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError(f"field number 0 at offset {pos}")
        if wire == _VARINT:
            value_start = pos
            _, pos = _varint(buf, pos, end)
        elif wire == _LENGTH_DELIMITED:
            length, value_start = _varint(buf, pos, end)
            pos = value_start + length
        elif wire in _FIXED_WIDTHS:
            value_start, pos = pos, pos + _FIXED_WIDTHS[wire]
        else:
            raise ValueError(f"unsupported wire type {wire} for field {number}")
        if pos > end:
            raise ValueError(f"field {number} at offset {value_start} runs past the end of its message")
        yield number, wire, value_start, pos


@dataclass(frozen=True)
class OnnxLayout:
    has_graph: bool
    metadata_props: dict[str, str]  # the first entry of a key wins


def _entry(buf, start: int, end: int) -> tuple[str, str]:
    parts = {1: "", 2: ""}
    for number, wire, value_start, value_end in _fields(buf, start, end):
        if number in parts and wire == _LENGTH_DELIMITED:
            try:
                parts[number] = bytes(buf[value_start:value_end]).decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"string entry at offset {value_start} is not valid UTF-8") from None
    return parts[1], parts[2]


# Where TensorProtos can sit, as (message, field number) -> the message that field holds, from
# onnx.proto: the graph's initializers and sparse initializers, Constant-like node attributes
# (t, tensors, sparse_tensor(s)), subgraphs of If/Loop/Scan (g, graphs) and model functions.
_CHILDREN = {
    ("model", 7): "graph", ("model", 25): "function",
    ("function", 7): "node",
    ("graph", 1): "node", ("graph", 5): "tensor", ("graph", 15): "sparse",
    ("node", 5): "attribute",
    ("attribute", 5): "tensor", ("attribute", 10): "tensor", ("attribute", 6): "graph",
    ("attribute", 11): "graph", ("attribute", 22): "sparse", ("attribute", 23): "sparse",
    ("sparse", 1): "tensor", ("sparse", 2): "tensor",
}
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


@dataclass(frozen=True)
class ExternalData:
    """A tensor whose data onnx.proto says lies in another file, at ``location`` (relative to
    the model file's folder, as written in the file: not yet checked)."""

    tensor: str
    location: str


def _tensor_external(buf, start: int, end: int) -> ExternalData | None:
    name, location, external = "", None, False
    for number, wire, value_start, value_end in _fields(buf, start, end):
        if number == _TENSOR_NAME and wire == _LENGTH_DELIMITED:
            name = bytes(buf[value_start:value_end]).decode("utf-8", "replace")
        elif number == _TENSOR_DATA_LOCATION and wire == _VARINT:
            external = _varint(buf, value_start, value_end)[0] == _EXTERNAL
        elif number == _TENSOR_EXTERNAL_DATA and wire == _LENGTH_DELIMITED:
            key, value = _entry(buf, value_start, value_end)
            if key == "location":
                location = value
    if location is None and not external:
        return None
    return ExternalData(name, "" if location is None else location)


def external_data(data) -> list[ExternalData]:
    """Every tensor of the model (initializers, node attributes, subgraphs, functions) that
    names external data, or is marked EXTERNAL, in file order."""
    found: list[ExternalData] = []
    stack = [("model", 0, len(data))]
    while stack:
        kind, start, end = stack.pop()
        if kind == "tensor":
            ref = _tensor_external(data, start, end)
            if ref is not None:
                found.append(ref)
            continue
        children = [(_CHILDREN[(kind, number)], value_start, value_end)
                    for number, wire, value_start, value_end in _fields(data, start, end)
                    if wire == _LENGTH_DELIMITED and (kind, number) in _CHILDREN]
        stack.extend(reversed(children))
    return found


def parse_onnx(data) -> OnnxLayout:
    """Scan the top-level fields of a serialized ModelProto (bytes, bytearray or mmap)."""
    has_graph = False
    props: dict[str, str] = {}
    for number, wire, start, end in _fields(data, 0, len(data)):
        if number == _GRAPH_FIELD and wire == _LENGTH_DELIMITED:
            has_graph = True
        elif number == _METADATA_PROPS_FIELD and wire == _LENGTH_DELIMITED:
            key, value = _entry(data, start, end)
            props.setdefault(key, value)
    return OnnxLayout(has_graph, props)


