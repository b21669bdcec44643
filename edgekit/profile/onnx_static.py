"""Static figures of a .onnx file from its graph (see :mod:`edgekit.runtime.onnx_graph`).

MAC operators (ONNX operator reference, https://onnx.ai/onnx/operators/, and ONNX Runtime's
com.microsoft contrib ops): Conv, ConvInteger, QLinearConv, FusedConv (weights
[c_out, c_in / groups, kh, kw], output positions of the NCHW output); ConvTranspose (input
positions); Gemm and QGemm (B holds K x N); MatMul, MatMulInteger, QLinearMatMul,
MatMulIntegerToFloat, DynamicQuantizeMatMul (K = last axis of A). A QDQ model's Conv/MatMul
reads its weights through DequantizeLinear; the weight shape is the quantized initializer's,
and the operator counts as int8 because ONNX Runtime fuses the QDQ group into an integer kernel.
"""

from __future__ import annotations

import mmap
from collections import defaultdict
from pathlib import Path

from edgekit.runtime.onnx_graph import OnnxGraph, OnnxNode, parse_graph

from . import onnx_shapes
from .onnx_shapes import ValueType
from .static_report import OpStat, StaticReport, positions

# op type -> (weight input, data input whose positions count, leading axes before the positions)
_WEIGHTED = {"Conv": (1, "out", 2), "ConvInteger": (1, "out", 2), "QLinearConv": (3, "out", 2),
             "FusedConv": (1, "out", 2), "ConvTranspose": (1, "in", 2),
             "Gemm": (1, "gemm", 0), "QGemm": (3, "gemm", 0)}
_MATMUL = {"MatMul", "MatMulInteger", "QLinearMatMul", "MatMulIntegerToFloat", "DynamicQuantizeMatMul"}
_MAC_OPS = {*_WEIGHTED, *_MATMUL}
_CONVERT = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
_PASS_THROUGH = {"DequantizeLinear", "QuantizeLinear", "Identity", "Cast"}  # same shape out as in
_INTEGER_OPS = {"QGemm", "QAttention", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}
_FLOAT = {"float32", "float16", "bfloat16", "float64"}
_QUANT = {"int8", "uint8", "int16", "uint16", "int4", "uint4"}
_PARAM_TYPES = _FLOAT | _QUANT
# Inputs that are quantization scales or zero points, not parameters.
_QPARAM_INPUTS = {"QuantizeLinear": {1, 2}, "DequantizeLinear": {1, 2}, "QLinearConv": {1, 2, 4, 5, 6, 7},
                  "QLinearMatMul": {1, 2, 4, 5, 6, 7}, "QLinearAdd": {1, 2, 4, 5, 6, 7},
                  "QLinearMul": {1, 2, 4, 5, 6, 7}, "ConvInteger": {2, 3}, "MatMulInteger": {2, 3},
                  "QGemm": {1, 2, 4, 5, 7, 8}, "MatMulIntegerToFloat": {2, 3, 4, 5}}


class _Graph:
    """The parsed graph with producers, consumers and value types at hand."""

    def __init__(self, graph: OnnxGraph, types: dict[str, ValueType]) -> None:
        self.graph, self.types = graph, types
        self.producer: dict[str, OnnxNode] = {out: node for node in graph.nodes for out in node.outputs if out}
        self.consumers: dict[str, list[tuple[OnnxNode, int]]] = defaultdict(list)
        for node in graph.nodes:
            for position, name in enumerate(node.inputs):
                if name:
                    self.consumers[name].append((node, position))

    def shape(self, name: str) -> tuple[int | None, ...] | None:
        for _ in range(8):  # follow Q/DQ/Identity chains back to a known shape
            known = self.types.get(name)
            if known is not None and known.shape is not None:
                return known.shape
            node = self.producer.get(name)
            if node is None or node.op_type not in _PASS_THROUGH or not node.inputs:
                return None
            name = node.inputs[0]
        return None

    def produced_by(self, name: str, op_type: str) -> bool:
        node = self.producer.get(name)
        return node is not None and node.op_type == op_type


def _input(node: OnnxNode, position: int) -> str:
    return node.inputs[position] if position < len(node.inputs) else ""


def _size(shape) -> int | None:
    n = 1
    for d in shape:
        if d is None:
            return None
        n *= d
    return n


def node_macs(g: _Graph, node: OnnxNode) -> int | None:
    """MACs of one node at batch 1 (0 for nodes that do none; None when shapes are unknown)."""
    if node.op_type in _WEIGHTED:
        w_pos, data, lead = _WEIGHTED[node.op_type]
        weights = g.shape(_input(node, w_pos))
        if weights is None or _size(weights) is None:
            return None
        if data == "gemm":  # [M, K] x [K, N]: M is the batch
            return _size(weights)
        shape = g.shape(node.outputs[0] if data == "out" else _input(node, 0))
        count = None if shape is None else positions(shape, skip_leading=lead, skip_trailing=0)
        return None if count is None else _size(weights) * count
    if node.op_type in _MATMUL:
        a, out = g.shape(_input(node, 0)), g.shape(node.outputs[0])
        if not a or a[-1] is None or out is None:
            return None
        rest = _size(out[1:] if len(out) >= 2 else out)
        return None if rest is None else a[-1] * rest
    return 0


def _precision(g: _Graph, node: OnnxNode) -> str:
    op = node.op_type
    if op in _CONVERT:
        return "convert"
    if op.startswith("QLinear") or op.endswith("Integer") or op in _INTEGER_OPS:
        return "int8"
    if node.inputs and g.produced_by(node.inputs[0], "DequantizeLinear"):
        return "int8"
    if op in _WEIGHTED and g.produced_by(_input(node, _WEIGHTED[op][0]), "DequantizeLinear"):
        return "hybrid"
    dtype = g.types.get(node.outputs[0]).dtype if node.outputs and node.outputs[0] in g.types else None
    if dtype in _QUANT:  # Reshape, Transpose, ... on quantized tensors (QOperator format)
        return "int8"
    return "float" if dtype in _FLOAT else "other"


def _is_param(g: _Graph, name: str, dtype: str | None) -> bool:
    uses = [(node, pos) for node, pos in g.consumers.get(name, ())
            if pos not in _QPARAM_INPUTS.get(node.op_type, ())]
    if not uses:
        return False  # unused, or only a scale / zero point
    if dtype in _PARAM_TYPES:
        return True
    return dtype in ("int32", "int64") and any(
        (node.op_type == "DequantizeLinear" and pos == 0) or (node.op_type == "QLinearConv" and pos == 8)
        or (node.op_type in _MAC_OPS and pos >= 2 and node.op_type != "QLinearConv")
        for node, pos in uses)


def _params(g: _Graph) -> int:
    constants = [(t, t.name) for t in g.graph.initializers.values()]
    constants += [(n.value, n.outputs[0]) for n in g.graph.nodes if n.value is not None and n.outputs]
    return sum(t.size for t, name in constants if _is_param(g, name, t.dtype))


def _needed(graph: OnnxGraph) -> set[str]:
    needed = {node.outputs[0] for node in graph.nodes if node.outputs and node.outputs[0]}
    for node in graph.nodes:
        if node.op_type in _MAC_OPS and node.inputs:
            needed.add(node.inputs[0])
    return needed


def _read(path: Path) -> tuple[OnnxGraph, int]:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            graph = parse_graph(data)
        except ValueError as exc:
            raise ValueError(f"{str(path)!r}: cannot read the ONNX graph: {exc}") from None
        return graph, len(data)


def shaped_graph(path: Path, needed: set[str] | None = None) -> _Graph:
    """The file's graph with producers, consumers and the types of ``needed`` values (default:
    every node output and MAC input), for readers that need more than :func:`onnx_static`'s
    totals (the latency model's kernel features)."""
    graph, _ = _read(Path(path))
    types, _, _ = onnx_shapes.resolve(Path(path), graph, _needed(graph) if needed is None else needed)
    return _Graph(graph, types)


def onnx_static(path: Path) -> StaticReport:
    graph, size = _read(path)
    types, source, failures = onnx_shapes.resolve(path, graph, _needed(graph))
    g = _Graph(graph, types)
    ops = tuple(OpStat(n.index, n.name or f"{n.op_type}_{n.index}", n.op_type, node_macs(g, n), _precision(g, n))
                for n in graph.nodes)
    unknown = [op.name for op in ops if op.macs is None]
    notes = []
    if unknown:
        notes += failures
        notes.append(f"MACs unknown: no shapes for {len(unknown)} MAC operator(s) ({', '.join(unknown[:3])}"
                     f"{', ...' if len(unknown) > 3 else ''})")
    return StaticReport("onnx", size, _params(g), ops, source, tuple(notes))
