"""The main graph of an ONNX file: nodes, initializers (dims, types and where their data lies,
never the data itself) and the typed values (graph inputs, outputs, ``value_info``).

Format: the Protocol Buffers wire encoding of onnx.proto (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto),
read with the bounds-checked field scanner of :mod:`onnxproto`, so no ``onnx`` package is
needed. Messages and field numbers used:

- ``ModelProto``: producer_name 2, opset_import 8 (domain 1, version 2), graph 7.
- ``GraphProto``: node 1, initializer 5, input 11, output 12, value_info 13.
- ``NodeProto``: input 1, output 2, name 3, op_type 4, attribute 5, domain 7;
  ``AttributeProto``: name 1, i 3, t 5 (read for ``Constant`` nodes only), ints 8 (packed or
  not): integer attributes such as a Conv's ``strides``, ``dilations`` and ``group``.
- ``TensorProto``: dims 1 (packed or not), data_type 2, name 8, and where the values lie:
  raw_data 9 (little-endian bytes), else packed float_data 4 / int32_data 5 / int64_data 7 /
  double_data 10; data_location 14 (1 = external file, not read here).
- ``ValueInfoProto``: name 1, type 2 -> ``TypeProto.tensor_type`` 1 -> elem_type 1,
  shape 2 -> dim 1 -> dim_value 1 | dim_param 2.

Nodes inside control-flow bodies (If/Loop/Scan attributes) are not read. Malformed input
raises ValueError and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from .onnxproto import _LENGTH_DELIMITED, _VARINT, _fields, _varint

# TensorProto.DataType, as numpy-style names.
DATA_TYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
    9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64",
    15: "complex128", 16: "bfloat16", 17: "float8e4m3fn", 18: "float8e4m3fnuz", 19: "float8e5m2",
    20: "float8e5m2fnuz", 21: "uint4", 22: "int4", 23: "float4e2m1",
}  # fmt: skip


@dataclass(frozen=True)
class OnnxTensor:
    """An initializer or a Constant node's value: name, element type, dims and where its values
    lie in the file (read them with :func:`edgekit.runtime.constants.onnx_array`)."""

    name: str
    dtype: str | None
    dims: tuple[int, ...]
    data: tuple[int, int, int] | None = None  # (TensorProto field, start, end) of the values
    external: bool = False  # the values lie in another file

    @property
    def size(self) -> int:
        n = 1
        for d in self.dims:
            n *= d
        return n


@dataclass(frozen=True)
class OnnxValue:
    """A typed value: a graph input/output or a value_info entry (None: unknown)."""

    name: str
    dtype: str | None
    shape: tuple[int | None, ...] | None


@dataclass(frozen=True)
class OnnxNode:
    index: int
    name: str
    op_type: str
    domain: str
    inputs: tuple[str, ...]  # "" marks an omitted optional input
    outputs: tuple[str, ...]
    value: OnnxTensor | None = None  # a Constant node's tensor attribute
    ints: tuple[tuple[str, tuple[int, ...]], ...] = ()  # integer attributes (an ``i`` as one value)

    def attribute(self, name: str, default: tuple[int, ...] | None = None) -> tuple[int, ...] | None:
        return dict(self.ints).get(name, default)


@dataclass(frozen=True)
class OnnxGraph:
    nodes: tuple[OnnxNode, ...]
    initializers: dict[str, OnnxTensor]
    inputs: tuple[OnnxValue, ...]  # graph inputs that are not initializers
    outputs: tuple[OnnxValue, ...]
    value_info: tuple[OnnxValue, ...]
    opsets: dict[str, int]
    producer: str


def _text(buf, start: int, end: int) -> str:
    try:
        return bytes(buf[start:end]).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"string at offset {start} is not valid UTF-8") from None


def _int(buf, start: int, end: int) -> int:
    value, _ = _varint(buf, start, end)
    return value - (1 << 64) if value >= 1 << 63 else value


def _packed(buf, wire: int, start: int, end: int) -> list[int]:
    if wire == _VARINT:
        return [_int(buf, start, end)]
    values, pos = [], start
    while pos < end:
        value, pos = _varint(buf, pos, end)
        values.append(value - (1 << 64) if value >= 1 << 63 else value)
    return values


_RAW_DATA, _TYPED_DATA = 9, (4, 5, 7, 10)  # raw_data; float_data, int32_data, int64_data, double_data


def _tensor(buf, start: int, end: int) -> OnnxTensor:
    dims: list[int] = []
    name, dtype, data, external = "", None, None, False
    for number, wire, s, e in _fields(buf, start, end):
        if number == 1 and wire in (_VARINT, _LENGTH_DELIMITED):
            dims.extend(_packed(buf, wire, s, e))
        elif number == 2 and wire == _VARINT:
            dtype = DATA_TYPES.get(_int(buf, s, e), "undefined")
        elif number == 8 and wire == _LENGTH_DELIMITED:
            name = _text(buf, s, e)
        elif wire == _LENGTH_DELIMITED and (number == _RAW_DATA or (number in _TYPED_DATA and data is None)):
            data = (number, s, e)
        elif number == 14 and wire == _VARINT:
            external = _int(buf, s, e) == 1
    if any(d < 0 for d in dims):
        raise ValueError(f"tensor {name!r} has negative dims {dims}")
    return OnnxTensor(name, dtype, tuple(dims), data, external)


def _submessage(buf, start: int, end: int, number: int) -> tuple[int, int] | None:
    for n, wire, s, e in _fields(buf, start, end):
        if n == number and wire == _LENGTH_DELIMITED:
            return s, e
    return None


def _dims(buf, start: int, end: int) -> tuple[int | None, ...]:
    dims: list[int | None] = []
    for number, wire, s, e in _fields(buf, start, end):
        if number != 1 or wire != _LENGTH_DELIMITED:
            continue
        value = None
        for n, w, vs, ve in _fields(buf, s, e):
            if n == 1 and w == _VARINT:
                value = _int(buf, vs, ve)
        dims.append(value if value is not None and value >= 0 else None)
    return tuple(dims)


def _value(buf, start: int, end: int) -> OnnxValue:
    name, dtype, shape = "", None, None
    for number, wire, s, e in _fields(buf, start, end):
        if number == 1 and wire == _LENGTH_DELIMITED:
            name = _text(buf, s, e)
        elif number == 2 and wire == _LENGTH_DELIMITED:
            tensor_type = _submessage(buf, s, e, 1)
            if tensor_type is None:
                continue  # sequences, maps, optionals: no tensor shape
            for n, w, ts, te in _fields(buf, *tensor_type):
                if n == 1 and w == _VARINT:
                    dtype = DATA_TYPES.get(_int(buf, ts, te))
                elif n == 2 and w == _LENGTH_DELIMITED:
                    shape = _dims(buf, ts, te)
    return OnnxValue(name, dtype, shape)


def _int_attribute(buf, start: int, end: int) -> tuple[str, tuple[int, ...]] | None:
    name, values = "", []
    for number, wire, s, e in _fields(buf, start, end):
        if number == 1 and wire == _LENGTH_DELIMITED:
            name = _text(buf, s, e)
        elif number in (3, 8) and wire in (_VARINT, _LENGTH_DELIMITED):
            values.extend(_packed(buf, wire, s, e))
    return (name, tuple(values)) if name and values else None


def _constant_value(buf, start: int, end: int) -> OnnxTensor | None:
    name, tensor = "", None
    for number, wire, s, e in _fields(buf, start, end):
        if number == 1 and wire == _LENGTH_DELIMITED:
            name = _text(buf, s, e)
        elif number == 5 and wire == _LENGTH_DELIMITED:
            tensor = _tensor(buf, s, e)
    return tensor if name == "value" else None


def _node(buf, start: int, end: int, index: int) -> OnnxNode:
    inputs: list[str] = []
    outputs: list[str] = []
    attributes: list[tuple[int, int]] = []
    parts = {3: "", 4: "", 7: ""}
    for number, wire, s, e in _fields(buf, start, end):
        if wire != _LENGTH_DELIMITED:
            continue
        if number == 1:
            inputs.append(_text(buf, s, e))
        elif number == 2:
            outputs.append(_text(buf, s, e))
        elif number in parts:
            parts[number] = _text(buf, s, e)
        elif number == 5:
            attributes.append((s, e))
    value = None
    if parts[4] == "Constant" and parts[7] in ("", "ai.onnx"):
        for s, e in attributes:
            value = _constant_value(buf, s, e) or value
    ints = tuple(a for a in (_int_attribute(buf, s, e) for s, e in attributes) if a is not None)
    return OnnxNode(index, parts[3], parts[4], parts[7], tuple(inputs), tuple(outputs), value, ints)


def _graph(buf, start: int, end: int) -> dict:
    found: dict = {"nodes": [], "initializers": {}, "inputs": [], "outputs": [], "value_info": []}
    for number, wire, s, e in _fields(buf, start, end):
        if wire != _LENGTH_DELIMITED:
            continue
        if number == 1:
            found["nodes"].append(_node(buf, s, e, len(found["nodes"])))
        elif number == 5:
            tensor = _tensor(buf, s, e)
            found["initializers"].setdefault(tensor.name, tensor)
        elif number in (11, 12, 13):
            found[{11: "inputs", 12: "outputs", 13: "value_info"}[number]].append(_value(buf, s, e))
    return found


def _opset(buf, start: int, end: int) -> tuple[str, int]:
    domain, version = "", 0
    for number, wire, s, e in _fields(buf, start, end):
        if number == 1 and wire == _LENGTH_DELIMITED:
            domain = _text(buf, s, e)
        elif number == 2 and wire == _VARINT:
            version = _int(buf, s, e)
    return domain, version


def parse_graph(data) -> OnnxGraph:
    """Read the main graph of a serialized ModelProto (bytes, bytearray or mmap)."""
    graph, producer, opsets = None, "", {}
    for number, wire, s, e in _fields(data, 0, len(data)):
        if wire != _LENGTH_DELIMITED:
            continue
        if number == 7 and graph is None:
            graph = _graph(data, s, e)
        elif number == 2:
            producer = _text(data, s, e)
        elif number == 8:
            domain, version = _opset(data, s, e)
            opsets[domain or "ai.onnx"] = version
    if graph is None:
        raise ValueError("the file has no graph")
    inits = graph["initializers"]
    return OnnxGraph(tuple(graph["nodes"]), inits,
                     tuple(v for v in graph["inputs"] if v.name not in inits),
                     tuple(graph["outputs"]), tuple(graph["value_info"]), opsets, producer)
