"""Static figures of a .tflite file from its flatbuffer (see :mod:`edgekit.runtime.tflite_graph`).

MAC operators and where their weights sit (TFLite builtin operator reference,
https://ai.google.dev/edge/litert/models/ops_compatibility): CONV_2D and CONV_3D (filter =
input 1, output positions), DEPTHWISE_CONV_2D (filter [1, kh, kw, c * multiplier]),
FULLY_CONNECTED (weights [units, in]), TRANSPOSE_CONV and CONV_3D_TRANSPOSE (filter = input 1,
input positions of input 2), BATCH_MATMUL (K from the first operand). Shapes are the stored
ones, where a dynamic batch is 1.
"""

from __future__ import annotations

import mmap
from pathlib import Path

from edgekit.runtime.tflite_graph import TfliteGraph, TfliteOperator, parse_graph

from .static_report import OpStat, StaticReport, positions

_WEIGHTED = {"CONV_2D": "out", "CONV_3D": "out", "DEPTHWISE_CONV_2D": "out", "FULLY_CONNECTED": "out",
             "TRANSPOSE_CONV": "in", "CONV_3D_TRANSPOSE": "in"}
_MAC_OPS = {*_WEIGHTED, "BATCH_MATMUL"}
_QUANT = {"int8", "uint8", "int16", "int4"}
_FLOAT = {"float32", "float16", "bfloat16", "float64"}
_PARAM_TYPES = _QUANT | _FLOAT | {"uint4", "int2"}


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= max(int(d), 0)
    return n


def _shape(graph: TfliteGraph, op: TfliteOperator, position: int, outputs: bool = False) -> tuple[int, ...]:
    indices = op.outputs if outputs else op.inputs
    if position >= len(indices) or indices[position] < 0:
        side = "output" if outputs else "input"
        raise ValueError(f"operator {op.index} ({op.opcode}) has no {side} {position}")
    return graph.tensors[indices[position]].shape


def op_macs(graph: TfliteGraph, op: TfliteOperator) -> int | None:
    """MACs of one operator at batch 1 (0 for operators that do none; None if unknowable)."""
    if op.opcode in _WEIGHTED:
        weights = _shape(graph, op, 1)
        data = _shape(graph, op, 0, outputs=True) if _WEIGHTED[op.opcode] == "out" else _shape(graph, op, 2)
        count = positions(data)
        return None if count is None else _size(weights) * count
    if op.opcode == "BATCH_MATMUL":
        a, out = _shape(graph, op, 0), _shape(graph, op, 0, outputs=True)
        if len(a) < 2:
            return None
        k = a[-2] if op.adj_x else a[-1]
        return int(k) * _size(out[1:] if len(out) >= 2 else out)
    return 0


def _precision(graph: TfliteGraph, op: TfliteOperator) -> str:
    if op.opcode in ("QUANTIZE", "DEQUANTIZE"):
        return "convert"
    out = graph.tensors[op.outputs[0]].dtype if op.outputs else "other"
    if out in _QUANT:
        return "int8"
    if out in _FLOAT:
        weights = [graph.tensors[i] for i in op.inputs if i >= 0 and graph.tensors[i].constant]
        return "hybrid" if any(w.dtype in _QUANT for w in weights) else "float"
    return "other"


def _params(graph: TfliteGraph) -> int:
    """Learned constants; a MAC operator's weights and bias count once per operator, because the
    converter stores identical buffers once (all-zero biases of same-sized layers, say).
    Constants stored in another type behind a DEQUANTIZE (fp16 weights) count for its consumers."""
    dequantized = {op.outputs[0]: op.inputs[0] for op in graph.operators
                   if op.opcode == "DEQUANTIZE" and op.inputs and op.outputs
                   and op.inputs[0] >= 0 and graph.tensors[op.inputs[0]].constant}
    per_use, shared = 0, set()
    for op in graph.operators:
        if op.opcode == "DEQUANTIZE":
            continue
        for position, i in enumerate(op.inputs):
            source = dequantized.get(i, i)
            tensor = graph.tensors[source] if source >= 0 else None
            if tensor is None or not tensor.constant:
                continue
            is_bias = op.opcode in _MAC_OPS and position >= 2 and tensor.dtype in ("int32", "int64")
            if not (tensor.dtype in _PARAM_TYPES or is_bias):
                continue
            if op.opcode in _MAC_OPS:
                per_use += tensor.size
            else:
                shared.add(source)
    return per_use + sum(graph.tensors[i].size for i in shared)


def tflite_static(path: Path) -> StaticReport:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            graph = parse_graph(data)
            ops = tuple(OpStat(op.index, graph.tensors[op.outputs[0]].name if op.outputs else f"op_{op.index}",
                               op.opcode, op_macs(graph, op), _precision(graph, op)) for op in graph.operators)
        except ValueError as exc:
            raise ValueError(f"{str(path)!r}: cannot read the TFLite graph: {exc}") from None
        size = len(data)
    notes = []
    if graph.subgraphs > 1:
        notes.append(f"{graph.subgraphs - 1} further subgraph(s) (control flow) not counted")
    if any(t.signature and any(d < 0 for d in t.signature[1:]) for t in (graph.tensors[i] for i in graph.inputs)):
        notes.append("the input has dynamic dimensions besides the batch: MACs are for the stored shape")
    return StaticReport("tflite", size, _params(graph), ops, "stored in the file", tuple(notes))
